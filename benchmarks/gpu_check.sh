#!/usr/bin/env bash
# The GPU checks, in one run of a few minutes on one GPU: every stage at preset=smoke with trainer=gpu
# (bf16 mixed precision), the DDP strategy (NCCL, bf16) on the devices present, resume, then the speed
# benchmarks on the GPU (Lightning vs a plain loop; the paper-size EDM U-Net in fp32 and bf16).
#
#     bash benchmarks/gpu_check.sh [report_dir]        # default reports/gpu_check; summary.txt + one log per step
set -u
OUT=${1:-reports/gpu_check}
PY=${PY:-python3}
W=${WORK:-/tmp/dydiff_gpu_check}
mkdir -p "$OUT"
: > "$OUT/summary.txt"
step() {  # step NAME TIMEOUT_S CMD...: run, log, time; later steps run even when one fails
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s%N)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  printf "%-30s rc=%-3d %7.1f s\n" "$name" "$rc" "$(( ($(date +%s%N) - t0) / 1000000 ))e-3" | tee -a "$OUT/summary.txt"
  grep -E "normalized score|Error|error:|upd/s|traj|^(td3bc|cql|diffql) |^(unet|mlp) " "$OUT/$name.log" | tail -6
}
S="preset=smoke data_dir=$W/data checkpoint_dir=$W/ckpt log_dir=$W/runs progress=false"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/summary.txt"
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, \
'bf16', torch.cuda.is_bf16_supported())" | tee -a "$OUT/summary.txt"
step collect 120 $PY stages/collect.py preset=smoke data_dir=$W/data progress=false
step pretrain_gpu_bf16 240 $PY stages/pretrain.py $S trainer=gpu "models=[denoiser,dynamics,reward,synther]"
for a in td3bc cql diffql; do
  step "policy_${a}_dydiff_gpu" 180 $PY stages/policy.py $S trainer=gpu algo=$a synth=dydiff
done
step policy_td3bc_synther_gpu 180 $PY stages/policy.py $S trainer=gpu algo=td3bc synth=synther
step policy_td3bc_dydiff_ddp 180 $PY stages/policy.py $S trainer=ddp algo=td3bc synth=dydiff tag=ddp
step policy_td3bc_seeds_gpu 180 $PY stages/policy.py $S trainer=gpu algo=td3bc synth=dydiff "seeds=[0,1,2]"
step policy_td3bc_seeds_batched_gpu 180 $PY stages/policy.py $S trainer=gpu algo=td3bc synth=dydiff "seeds=[0,1,2]" \
  synth.batched=true tag=batched
for a in td3bc cql diffql; do
  step "policy_${a}_compile_gpu" 240 $PY stages/policy.py $S trainer=gpu algo=$a compile=true tag=compile
done
step policy_td3bc_dydiff_resume 180 $PY stages/policy.py $S trainer=gpu algo=td3bc synth=dydiff epochs=4 resume=true
step bench_policy_cuda 300 $PY benchmarks/policy_throughput.py --device cuda --steps 1000 --repeats 3 --seeds 1 3 5 8
step bench_denoiser_fp32 120 $PY benchmarks/denoiser.py --device cuda --sizes paper --networks unet mlp \
  --horizon 100 --rollout-batch 2048 --steps 34 --train-steps 20
step bench_denoiser_bf16 120 $PY benchmarks/denoiser.py --device cuda --sizes paper --networks unet mlp \
  --horizon 100 --rollout-batch 2048 --steps 34 --train-steps 20 --bf16
