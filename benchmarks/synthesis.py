"""Wall time of one synthesis round against one epoch of policy updates (default: the cpu preset, maze2d-umaze,
TD3+BC + DyDiff), and the projected wall time of a whole DyDiff run over the base run (same epochs and
evaluations). Target: at most 1.5×. Needs the stage-1 models: run `python stages/pretrain.py` first.

    python benchmarks/synthesis.py
    python benchmarks/synthesis.py synth.num_trajectories=1024 synth.iterations=2 denoiser=...
    python benchmarks/synthesis.py seeds=[0,1,2,3,4]    # also: K rounds one after another vs synth.batched's one batch
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dydiff.envs.evaluation import evaluate  # noqa: E402
from stages.policy import build  # noqa: E402


class EpochTimer(L.Callback):
    def on_train_epoch_start(self, trainer, module):
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds = time.perf_counter() - self.t0


def main():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("policy", overrides=["synth=dydiff", "progress=false", *sys.argv[1:]])
    c = OmegaConf.to_container(cfg, resolve=True)
    ds, module, _, _ = build(c)
    synthesis = module.rounds[0]
    _, base, _, _ = build({**c, "synth": {"name": "none"}})  # the base epoch: updates only, no evaluator
    timer = EpochTimer()
    L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[timer]).fit(base)
    epoch = timer.seconds

    synthesis.setup("cpu")
    synth, n = synthesis.synthesizer, synthesis.share
    rounds = []
    for k in range(2):  # the first round pays one-off costs (lazy init); report the faster
        g = torch.Generator().manual_seed(k)
        t0 = time.perf_counter()
        out, metrics = synth.generate(lambda o, g=g: module.act(o, synth.deterministic, g), n, g)
        rounds.append(time.perf_counter() - t0)
    round_s = min(rounds)

    if len(module.rounds) > 1:
        seeded(module)

    t0 = time.perf_counter()
    evaluate(lambda o: module.act(o).numpy(), ds.task, episodes=c["eval_episodes"], seed=0)
    eval_s = time.perf_counter() - t0

    E, s = c["epochs"], c["synth"]
    rounds_per_run = len([e for e in range(E) if synth.due(e)])
    base_s = E * epoch + (E // c["eval_every"]) * eval_s
    dydiff = base_s + rounds_per_run * round_s
    print(f"{c['dataset']['name']}, preset {c['preset']['name']}, {c['algo']['name']} "
          f"({c['algo']['steps_per_epoch']} updates/epoch), threads {torch.get_num_threads()}")
    print(f"synthesis: B_r {n}, L {synth.horizon}, M {s['iterations']}, trajectory model "
          f"{getattr(synth.denoiser, 'kind', '-')}, filter {s['filter']} η {s['keep']}: "
          f"{metrics['transitions']} transitions")
    print(f"one synthesis round   {round_s:8.2f} s")
    print(f"one epoch of updates  {epoch:8.2f} s   (round / epoch = {round_s / epoch:.2f})")
    print(f"one evaluation        {eval_s:8.2f} s   ({c['eval_episodes']} episodes, every {c['eval_every']} epochs)")
    print(f"whole run ({E} epochs, {rounds_per_run} rounds): base {base_s / 60:.1f} min, DyDiff {dydiff / 60:.1f} min, "
          f"ratio {dydiff / base_s:.2f} (target ≤ 1.5)")


def seeded(module, repeats: int = 2):
    """A K-seed run's synthesis at epoch 0: the K rounds one after another (synth.batched=false) against one batch
    of K × B_r trajectories (true); the faster of ``repeats`` each."""
    from dydiff.synthesis.round import run_batched

    class Quiet:
        def scalars(self, d):
            pass

        def image(self, tag, img):
            pass

    for r in module.rounds:
        r.setup("cpu")
    act = lambda obs, det, g, k: module.rollout_act(obs, det, g, member=k)  # noqa: E731
    times = {"per seed": [], "batched": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for k, r in enumerate(module.rounds):
            r.run(0, lambda obs, det, g, k=k: act(obs, det, g, k), Quiet())
        times["per seed"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_batched(module.rounds, 0, act, Quiet())
        times["batched"].append(time.perf_counter() - t0)
    a, b = min(times["per seed"]), min(times["batched"])
    print(f"{len(module.rounds)} seeds' rounds: one after another {a:.2f} s, one batch {b:.2f} s "
          f"(batched / sequential = {b / a:.2f})")


if __name__ == "__main__":
    main()
