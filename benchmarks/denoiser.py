"""Denoiser networks at the cpu and paper sizes: training samples/s, sampling trajectories/s at (B_r, L, N),
and peak memory. Runs on CPU here and on a GPU when one is present (--device cuda).

    python benchmarks/denoiser.py                       # umaze dims (obs 4 + act 2), cpu sizes
    python benchmarks/denoiser.py --sizes cpu paper --obs-dim 11 --act-dim 3 --device cuda
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from dydiff.diffusion.trajectory import TrajectoryModel

SIZES = {  # network_kwargs per preset (conf/preset/*.yaml)
    "cpu": {"unet": {"dim": 32, "dim_mults": [1, 2, 4], "kernel": 5}, "mlp": {"width": 256, "depth": 3}},
    "paper": {"unet": {"dim": 128, "dim_mults": [1, 4, 8], "kernel": 5}, "mlp": {"width": 1024, "depth": 6}},
}


def peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(network: str, size: str, args, device) -> dict:
    d = args.obs_dim + args.act_dim
    model = TrajectoryModel(args.obs_dim, args.act_dim, args.horizon, [0.0] * d, [1.0] * d, network=network,
                            network_kwargs=SIZES[size]).to(device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, args.horizon + 1, d, device=device)
    valid = torch.ones(args.batch, args.horizon + 1, dtype=torch.bool, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step():
        with autocast:
            loss = model.loss(x, valid)[0].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    sync()
    train_rate = args.batch * args.train_steps / (time.perf_counter() - t)
    s0 = torch.randn(args.rollout_batch, args.obs_dim, device=device)
    acts = torch.rand(args.rollout_batch, args.horizon, args.act_dim, device=device) * 2 - 1
    g = torch.Generator(device=device).manual_seed(0)
    model.eval()
    t = time.perf_counter()
    with autocast:
        model.sample(s0, acts, g, num_steps=args.steps)
    sync()
    sample_rate = args.rollout_batch / (time.perf_counter() - t)
    return {"network": network, "size": size, "params_M": params, "train_samples_per_s": train_rate,
            "sample_traj_per_s": sample_rate, "peak_MB": peak_mb(device)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["cpu"], choices=list(SIZES))
    p.add_argument("--networks", nargs="+", default=["unet", "mlp"])
    p.add_argument("--obs-dim", type=int, default=4)
    p.add_argument("--act-dim", type=int, default=2)
    p.add_argument("--horizon", type=int, default=64, help="L")
    p.add_argument("--batch", type=int, default=256, help="training batch")
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--rollout-batch", type=int, default=256, help="B_r (paper 2048)")
    p.add_argument("--steps", type=int, default=18, help="sampler steps N (paper 34)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPUs; slow on most CPUs)")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, obs {args.obs_dim} + act {args.act_dim}, L = {args.horizon}, batch {args.batch}, "
          f"B_r = {args.rollout_batch}, N = {args.steps}, bf16 {args.bf16}, threads {torch.get_num_threads()}")
    print(f"{'network':8} {'size':6} {'params':>8} {'train samples/s':>16} {'sample traj/s':>14} {'peak MB':>9}")
    for size in args.sizes:
        for network in args.networks:
            r = bench(network, size, args, device)
            print(f"{r['network']:8} {r['size']:6} {r['params_M']:7.2f}M {r['train_samples_per_s']:16.0f} "
                  f"{r['sample_traj_per_s']:14.1f} {r['peak_MB']:9.0f}")


if __name__ == "__main__":
    main()
