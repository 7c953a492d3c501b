"""Stage 2: train an offline policy (TD3+BC, CQL, Diffusion-QL) with real-environment evaluation.

    python stages/policy.py algo=td3bc                     # maze2d-umaze, cpu preset
    python stages/policy.py algo=td3bc synth=dydiff        # + DyDiff (needs stages/pretrain.py first)
    python stages/policy.py algo=cql dataset=hopper-medium-v2 seed=1
    python stages/policy.py algo=diffql resume=true
    python stages/policy.py trainer=ddp trainer.devices=8 preset=paper
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
    """The dataset, the policy module with its data (and synthesis round) attached, the evaluator, the run folder."""
    pretrain = pretrain_path(c)
    check_policy(c, pretrain)
    ds = load_dataset(data_dir=c["data_dir"], **c["dataset"])
    algo, s = c["algo"]["name"], c["synth"]
    out = Path(c["checkpoint_dir"]) / dataset_key(c["dataset"]["name"]) / "policy" / \
        (f"{algo}-{s['name']}" + (f"-{c['tag']}" if c["tag"] else "")) / f"seed{c['seed']}"
    mean, std = (ds.observations.mean(0).tolist(), (ds.observations.std(0) + 1e-3).tolist()) \
        if c["normalize_states"] else (None, None)
    real_ratio = s.get("real_ratio", c["real_ratio"])  # α; SynthER's own protocol sets it in conf/synth/synther.yaml
    torch.manual_seed(c["seed"])  # initial weights
    module = ALGOS[algo](obs_dim=ds.task.obs_dim, act_dim=ds.task.act_dim, task=ds.task.name, obs_mean=mean,
                         obs_std=std, batch_size=c["batch_size"], steps_per_epoch=steps_per_epoch(c),
                         seed=c["seed"], real_ratio=real_ratio, updates_per_step=c["updates_per_step"],
                         **c["algo"]["kwargs"])
    module.attach_data(ds.transitions())
    needs = getattr(synthesizers().get(s["name"]), "needs", ())
    pre = load_pretrained(pretrain, ds, models=needs) if needs else None
    synth = build_synthesizer(s, ds, pre, pretrain / "synther")
    if synth is not None:
        module.attach_round(SynthesisRound(synth, s["num_trajectories"], s["buffer_size"], ds.task.obs_dim,
                                           ds.task.act_dim, c["seed"], ds.task, s.get("figure_every", 0), out))
    info = {"dataset": c["dataset"]["name"], "algo": algo, "synth": s, "tag": c["tag"], "seed": c["seed"],
            "real_ratio": real_ratio, "epochs": c["epochs"], "threads": torch.get_num_threads()}
    evaluator = Evaluator(ds.task, c["seed"], c["eval_episodes"], c["eval_every"], ds.ref_random, ds.ref_expert, out,
                          info)
    return ds, module, evaluator, out


def run(cfg: DictConfig) -> dict:
    c = OmegaConf.to_container(cfg, resolve=True)
    set_threads(c["threads"])
    ds, module, evaluator, out = build(c)
    print(ds.describe())
    trainer = make_trainer(out, str(out.relative_to(c["checkpoint_dir"])), max_epochs=c["epochs"], monitor=None,
                           log_dir=c["log_dir"], progress=c["progress"], callbacks=[evaluator], **c["trainer"])
    trainer.fit(module, ckpt_path=resume_path(out / "last.ckpt") if c["resume"] else None)
    summary = evaluator.summary()  # every rank has every evaluation (gathered); rank 0 also wrote summary.json
    s = summary["last5_score_mean"]
    print(f"{c['dataset']['name']} {c['algo']['name']} (synth {c['synth']['name']}, seed {c['seed']}): normalized "
          f"score (mean of last 5 evaluations) {s:.2f}; references random {ds.ref_random:.2f} = 0, expert "
          f"{ds.ref_expert:.2f} = 100")
    return summary


@hydra.main(config_path="../conf", config_name="policy", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
