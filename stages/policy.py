"""Stage 2: train an offline policy (TD3+BC, CQL, Diffusion-QL) with real-environment evaluation.

    python stages/policy.py algo=td3bc                     # maze2d-umaze, cpu preset
    python stages/policy.py algo=td3bc synth=dydiff        # + DyDiff (needs stages/pretrain.py first)
    python stages/policy.py algo=cql dataset=hopper-medium-v2 seed=1
    python stages/policy.py algo=diffql resume=true
    python stages/policy.py trainer=ddp trainer.devices=8 preset=paper
    python stages/policy.py seeds=[0,1,2,3,4]              # 5 seeds as one batched model (any algo)
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from dydiff.algos import ALGOS
from dydiff.checkpoints import dataset_key, load_pretrained, pretrain_path
from dydiff.lightning.evaluation import Evaluator
from dydiff.lightning.trainer import make_trainer, resume_path, set_threads
from dydiff.settings import check_policy
from dydiff.sources import load_dataset
from dydiff.synthesis import build_synthesizer, synthesizers
from dydiff.synthesis.round import SynthesisRound


def steps_per_epoch(c: dict) -> int:
    """Updates an epoch: the same for every data source (protocol=equal), or the official code's (protocol=official)."""
    if c["protocol"] == "equal":
        return c["algo"]["steps_per_epoch"]
    return c["algo"]["official_steps_per_epoch"]["base" if c["synth"]["name"] == "none" else "synthetic"]


def build(c: dict):
    """The dataset, the policy module with its data (and a synthesis round per seed) attached, the evaluator of
    every seed, and the run folder (a K-seed run's checkpoint folder is ``seeds-<k0>-<k1>-...`` beside the seeds')."""
    pretrain = pretrain_path(c)
    check_policy(c, pretrain)
    ds = load_dataset(data_dir=c["data_dir"], **c["dataset"])
    algo, s, seeds, stacked = c["algo"]["name"], c["synth"], c["seeds"] or [c["seed"]], c["seeds"] is not None
    group = Path(c["checkpoint_dir"]) / dataset_key(c["dataset"]["name"]) / "policy" / \
        (f"{algo}-{s['name']}" + (f"-{c['tag']}" if c["tag"] else ""))
    dirs = [group / f"seed{k}" for k in seeds]
    out = group / ("seeds-" + "-".join(map(str, seeds))) if stacked else dirs[0]
    mean, std = (ds.observations.mean(0).tolist(), (ds.observations.std(0) + 1e-3).tolist()) \
        if c["normalize_states"] else (None, None)
    real_ratio = s.get("real_ratio", c["real_ratio"])  # α; SynthER's own protocol sets it in conf/synth/synther.yaml
    module = ALGOS[algo].stacked(seeds, obs_dim=ds.task.obs_dim, act_dim=ds.task.act_dim, task=ds.task.name,
                                 obs_mean=mean, obs_std=std, batch_size=c["batch_size"],
                                 steps_per_epoch=steps_per_epoch(c), real_ratio=real_ratio,
                                 updates_per_step=c["updates_per_step"], compile=c["compile"],
                                 **c["algo"]["kwargs"])
    module.attach_data(ds.transitions())
    needs = getattr(synthesizers().get(s["name"]), "needs", ())
    pre = load_pretrained(pretrain, ds, models=needs) if needs else None
    for seed, d in zip(seeds, dirs, strict=True):
        synth = build_synthesizer(s, ds, pre, pretrain / "synther")
        if synth is not None:
            module.attach_round(SynthesisRound(synth, s["num_trajectories"], s["buffer_size"], ds.task.obs_dim,
                                               ds.task.act_dim, seed, ds.task, s.get("figure_every", 0), d,
                                               key=f"/seed{seed}" if stacked else "", batched=s.get("batched", False)))
    infos = [{"dataset": c["dataset"]["name"], "algo": algo, "synth": s, "tag": c["tag"], "seed": seed,
              "seeds": seeds, "real_ratio": real_ratio, "epochs": c["epochs"], "threads": torch.get_num_threads()}
             for seed in seeds]
    evaluator = Evaluator(ds.task, seeds, c["eval_episodes"], c["eval_every"], ds.ref_random, ds.ref_expert, dirs,
                          infos, stacked=stacked)
    return ds, module, evaluator, out


def run(cfg: DictConfig) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True)
    set_threads(c["threads"])
    ds, module, evaluator, out = build(c)
    print(ds.describe())
    trainer = make_trainer(out, str(out.relative_to(c["checkpoint_dir"])), max_epochs=c["epochs"], monitor=None,
                           log_dir=c["log_dir"], progress=c["progress"], callbacks=[evaluator], **c["trainer"])
    trainer.fit(module, ckpt_path=resume_path(out / "last.ckpt") if c["resume"] else None)
    # every rank has every evaluation (gathered); rank 0 also wrote each seed's summary.json
    summaries = [evaluator.summary(m) for m in range(module.members)]
    for summary in summaries:
        print(f"{c['dataset']['name']} {c['algo']['name']} (synth {c['synth']['name']}, seed {summary['seed']}): "
              f"normalized score (mean of last 5 evaluations) {summary['last5_score_mean']:.2f}; references random "
              f"{ds.ref_random:.2f} = 0, expert {ds.ref_expert:.2f} = 100")
    return summaries[0] if c["seeds"] is None else summaries


@hydra.main(config_path="../conf", config_name="policy", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
