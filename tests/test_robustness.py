"""Nothing lost on a crash, nothing corrupted by a neighbour: unique temporary files, locks around
build-if-missing caches, content checks on load, and a resume that falls back to the previous checkpoint."""

import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir

from dydiff.lightning.trainer import AtomicCheckpointIO, CheckpointError, previous, resume_path

BUILD = ("import sys; from dydiff.sources import load_dataset; "
         "print(load_dataset('maze2d-umaze', size=4000, ref_episodes=2, data_dir=sys.argv[1], progress=False)"
         ".fingerprint)")


def test_two_processes_build_one_dataset_and_a_corrupt_cache_is_rebuilt(tmp_path, caplog):
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    prints = {o[0].strip() for o in outs}
    (cache,) = (tmp_path / "builtin").glob("maze2d-umaze-4000-*.hdf5")
    assert len(prints) == 1 and not list((tmp_path / "builtin").glob("*.tmp"))
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # a crash mid-copy, a full disk, …
    from dydiff.sources import load_dataset

    ds = load_dataset("maze2d-umaze", size=4000, ref_episodes=2, data_dir=tmp_path, progress=False)
    assert ds.fingerprint == prints.pop() and "corrupt" in caplog.text and str(cache) in caplog.text


def test_checkpoints_keep_the_previous_one_and_resume_falls_back_to_it(tmp_path, capsys):
    io, last = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, last)
    io.save_checkpoint({"epoch": 2}, last)
    assert torch.load(previous(last), weights_only=True) == {"epoch": 1}
    assert resume_path(last) == str(last) and resume_path(tmp_path / "none.ckpt") is None
    last.write_bytes(last.read_bytes()[:40])  # truncated
    assert resume_path(last) == str(previous(last)) and "unreadable" in capsys.readouterr().out
    previous(last).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="last.ckpt.*last-prev.ckpt.*resume=false"):
        resume_path(last)


def test_policy_resume_after_a_truncated_checkpoint_continues_from_the_previous_one(tmp_path):
    from stages.policy import run

    def cfg(*overrides):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("policy", overrides=["preset=smoke", f"data_dir={tmp_path}/data", "progress=false",
                                                f"checkpoint_dir={tmp_path}/ck", f"log_dir={tmp_path}/runs",
                                                *overrides])

    run(cfg("epochs=2"))
    last = tmp_path / "ck/maze2d-umaze/policy/td3bc-none/seed0/last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    summary = run(cfg("epochs=3", "resume=true"))
    assert [e["epoch"] for e in summary["evaluations"]] == [0, 1, 2]  # epoch 1, lost with last.ckpt, is redone
    assert torch.load(last, weights_only=True)["updates"] == 15


def test_the_stage_one_lock_is_taken_by_rank_zero_only(tmp_path, monkeypatch):
    import fcntl
    from contextlib import nullcontext

    from dydiff.io import locked_on_rank_zero

    with locked_on_rank_zero(tmp_path / "stage1"):
        with open(tmp_path / "stage1.lock") as f, pytest.raises(BlockingIOError):  # held: a second taker would wait
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert isinstance(locked_on_rank_zero(tmp_path / "other"), nullcontext)


def test_last_checkpoint_is_the_last_epoch_even_when_the_monitor_does_not_improve(tmp_path):
    """Lightning's save_last=True writes last.ckpt only in epochs whose monitored value improved; stage 2 loads the
    denoiser's last.ckpt and resume starts from it, so it must be the final epoch whatever the monitor did."""
    import lightning as L

    from dydiff.lightning.trainer import Steps, make_trainer

    class Worsening(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            return (self.w - 1.0).pow(2).sum()

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", float(self.current_epoch), batch_size=1)  # best at epoch 0, worse after

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = make_trainer(tmp_path / "ck", "w", max_epochs=3, monitor="val/loss", log_dir=str(tmp_path / "runs"),
                           progress=False, accelerator="cpu")
    trainer.fit(Worsening(), Steps(2), Steps(1))
    last = torch.load(tmp_path / "ck/last.ckpt", weights_only=True)
    best = torch.load(tmp_path / "ck/best.ckpt", weights_only=True)
    assert (last["global_step"], best["global_step"]) == (6, 2)
