"""Progress in a log file: lines, not carriage returns, with the position and an ETA."""

import io

import torch

from dydiff.lightning.progress import LineProgress
from dydiff.lightning.trainer import Steps, make_trainer
from dydiff.progress import Lines, duration
from dydiff.stage1 import RewardModule


def test_lines_print_every_tenth_with_eta():
    out = io.StringIO()
    bar = Lines(range(5, 105), 105, "generating", initial=5, stream=out)
    for i in bar:
        if i == 50:
            bar.set_postfix(eval_return=12)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue()
    assert lines[0].startswith("generating: 11/105 (10%)") and lines[-1].startswith("generating: 105/105 (100%)")
    assert lines[-1].endswith("ETA 0s  eval_return 12") and "eval_return" not in lines[3]
    assert (duration(59), duration(61), duration(3725)) == ("59s", "1m01s", "1h02m")


def test_line_progress_prints_one_line_per_epoch_with_its_metrics(tmp_path):
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(64, 4, generator=g), torch.rand(64, 2, generator=g)
    data = {"obs": obs, "act": act, "rew": obs[:, 0]}
    module = RewardModule(4, 2, hidden=8, layers=1, batch_size=16)
    module.attach_data(data, data)
    out = io.StringIO()
    trainer = make_trainer(tmp_path / "ck", "reward", max_epochs=3, monitor="val/mse", log_dir=str(tmp_path / "runs"),
                           progress=False, callbacks=[LineProgress("reward", stream=out)], accelerator="cpu")
    trainer.fit(module, Steps(4), Steps(1))
    lines = out.getvalue().splitlines()
    assert [line.split()[:3] for line in lines] == [["reward", "epoch", f"{k}/3"] for k in (1, 2, 3)]
    assert all("val/mse" in line and "s/epoch" in line and "ETA" in line for line in lines)
    assert lines[-1].endswith("ETA 0s")


def test_line_progress_rate_is_over_the_last_epochs_so_a_one_off_cost_leaves_the_eta():
    """An epoch of 500 s (SynthER's sampling) then 10 s epochs: after 10 more the rate is 10 s/epoch again (the mean
    since the start would still say 54.5 s)."""
    times = iter([0.0, 500.0, *[500.0 + 10 * k for k in range(1, 11)]])
    bar, out = LineProgress("p", stream=io.StringIO(), clock=lambda: next(times)), []

    class T:  # the trainer's fields the callback reads
        current_epoch, max_epochs, global_rank, progress_bar_metrics = 0, 100, 0, {}

    bar.on_train_start(T, None)
    for epoch in range(11):
        T.current_epoch = epoch
        bar.on_train_epoch_end(T, None)
        out.append(bar.pending[1])
    assert out[0] == "500.0s/epoch  ETA 13h45m" and out[1] == "255.0s/epoch  ETA 6h56m"
    assert out[10] == "10.0s/epoch  ETA 14m50s"
