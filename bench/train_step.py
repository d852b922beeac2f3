"""Time per phase of a training step, through the trainer's own code (the CLI on a small generated spec).

    .venv/bin/python bench/train_step.py --engine torch
    .venv/bin/python bench/train_step.py --engine deepspeed --ranks 2 --zero-stage 3

It writes a spec (a model of the given size built from nothing, the synthetic task, one stage), runs
``or1-train run`` (under torchrun for the DeepSpeed engine) and reads the ``timing_s/*`` metrics every step
logs: rollout (vLLM generation), reward (Math-Verify), old log-probs, the update, and the weight push into
vLLM. The first step is left out of the means (vLLM and DeepSpeed warm up). It also prints rollout and
update tokens/s, model FLOPs utilisation against ``--peak-tflops`` (known GPUs are looked up) and peak
memory. The online filter is off so that every step updates, whatever the rewards of a random model.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from or1_train.telemetry import read_jsonl  # noqa: E402

#: dense bf16 tensor-core peaks (TFLOP/s) by device name fragment, for MFU when --peak-tflops is not given
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}
PHASES = (
    ("rollout", "timing_s/gen"),
    ("reward", "timing_s/reward"),
    ("old log-probs", "timing_s/old_log_prob"),
    ("update", "timing_s/update_actor"),
    ("weight push", "timing_s/weight_sync"),
    ("whole step", "timing_s/step"),
)


def build_spec(args: argparse.Namespace, out: Path) -> dict:
    dtype = "bfloat16" if args.bf16 else "float32"
    engine: dict = {"kind": args.engine}
    if args.engine == "deepspeed":
        engine.update(
            zero_stage=args.zero_stage, bf16=args.bf16, gradient_checkpointing=args.gradient_checkpointing
        )
    if args.tokens_per_micro_batch:
        engine["max_tokens_per_micro_batch"] = args.tokens_per_micro_batch
    return {
        "name": f"bench-train-step-{args.engine}",
        "seed": 0,
        "model": {
            "path": str(out / "model"),
            "dtype": dtype,
            "bootstrap": {
                "hidden_size": args.hidden,
                "num_layers": args.layers,
                "num_heads": args.heads,
                "num_kv_heads": args.kv_heads,
                "max_positions": 128 + args.max_tokens,
                "distill_steps": 0,
            },
        },
        "data": {
            "sources": [
                {
                    "name": "arith",
                    "path": str(out / "arith.jsonl"),
                    "synthetic": {"num_problems": 512, "levels": [1, 4], "seed": 1},
                }
            ]
        },
        "stages": [
            {
                "steps": args.steps,
                "max_prompt_tokens": 96,
                "max_response_tokens": args.max_tokens,
                "rollout_batch": args.prompts,
                "mini_batch": args.prompts,
                "group_size": args.group,
            }
        ],
        "entropy": {"target": 0.2},
        "optim": {"lr": 1e-5},
        "filter": {"enabled": False},
        "rollout": {"engine": args.rollout, "gpu_memory_utilization": args.gpu_memory_utilization},
        "engine": engine,
        "evaluation": {"sets": [], "at_start": False},
        "checkpoints": {"every_steps": 0, "keep_last": 1},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_trainer(args: argparse.Namespace, spec_path: Path, run_dir: Path) -> float:
    """Run the CLI (under torchrun for DeepSpeed) and return its wall time."""
    env = dict(os.environ)
    env.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / "var" / "torch_extensions"))
    cli = ["-m", "or1_train", "run", str(spec_path), "--out", str(run_dir)]
    if args.engine == "deepspeed":
        import torch

        if not torch.cuda.is_available():
            env.setdefault("DS_ACCELERATOR", "cpu")
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(args.ranks),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            *cli,
        ]
    else:
        cmd = [sys.executable, *cli]
    t0 = time.perf_counter()
    log = run_dir.parent / "trainer.log"
    with open(log, "w") as handle:
        code = subprocess.run(cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode
    if code != 0:
        sys.exit(f"trainer exited {code}; see {log}:\n" + log.read_text()[-3000:])
    return time.perf_counter() - t0


def model_parameters(model_dir: Path) -> int:
    """Parameter count from the safetensors header (no torch import needed)."""
    total = 0
    for file in sorted(model_dir.glob("*.safetensors")):
        with open(file, "rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total


def peak_tflops(args: argparse.Namespace) -> tuple[float | None, str]:
    if args.peak_tflops:
        return args.peak_tflops, "given"
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for fragment, value in GPU_PEAK_TFLOPS.items():
            if fragment in name:
                return value * torch.cuda.device_count(), f"{name} x{torch.cuda.device_count()} bf16 dense"
    return None, "unknown peak: pass --peak-tflops"


def report(args: argparse.Namespace, run_dir: Path, wall: float) -> None:
    records = [r["metrics"] for r in read_jsonl(run_dir / "metrics.jsonl") if "timing_s/step" in r["metrics"]]
    steady = records[1:] if len(records) > 1 else records

    def mean(name: str) -> float:
        values = [m[name] for m in steady if isinstance(m.get(name), float)]
        return sum(values) / len(values) if values else float("nan")

    samples = args.prompts * args.group
    generated = mean("response_length/mean") * samples
    processed = generated + mean("prompt_length/mean") * samples
    params = model_parameters(run_dir.parent / "model")
    ranks = args.ranks if args.engine == "deepspeed" else 1
    print(
        f"engine {args.engine}"
        + (f" ZeRO-{args.zero_stage} x{ranks} ranks" if args.engine == "deepspeed" else "")
        + f", rollout {args.rollout}; model {params / 1e6:.2f}M parameters; {samples} samples x "
        f"{args.max_tokens} max tokens; {len(steady)} steady step(s) of {len(records)}; wall {wall:.0f} s"
    )
    threads = os.environ.get("OMP_NUM_THREADS")
    note = "" if threads or args.engine == "torch" else " (torchrun: 1 per rank)"
    print(f"  OMP_NUM_THREADS {threads or 'unset'}{note}")
    for label, name in PHASES:
        print(f"  {label:<14} {mean(name):8.3f} s")
    rollout_tps = generated / mean("timing_s/gen")
    update_tps = processed / mean("timing_s/update_actor")
    print(f"  rollout tokens/s  {rollout_tps:10.0f}   (generated tokens / rollout time)")
    print(f"  update tokens/s   {update_tps:10.0f}   (prompt + response tokens / update time)")
    # 6 N per token for forward + backward, +2 N with gradient checkpointing's recompute; 2 N to score
    train_flops = (8 if args.gradient_checkpointing else 6) * params * processed + 2 * params * processed
    train_s = mean("timing_s/update_actor") + mean("timing_s/old_log_prob")
    peak, source = peak_tflops(args)
    achieved = train_flops / train_s / 1e12
    if peak:
        print(
            f"  MFU (update + old log-probs) {100 * achieved / peak:.2f}%  "
            f"({achieved:.2f} TFLOP/s of {peak:.0f}, {source})"
        )
    else:
        print(f"  MFU n/a: {achieved:.4f} TFLOP/s achieved ({source})")
    memory = mean("actor/peak_memory_gb")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(
        f"  peak memory: actor {memory:.2f} GiB (GPU allocated or rank RSS); "
        f"largest process RSS {children:.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["torch", "deepspeed"], default="torch")
    parser.add_argument("--ranks", type=int, default=2, help="DeepSpeed ranks (torchrun --nproc_per_node)")
    parser.add_argument("--zero-stage", type=int, default=2, choices=[0, 1, 2, 3])
    parser.add_argument("--bf16", action="store_true", help="bf16 weights for the actor and vLLM")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--tokens-per-micro-batch", type=int, help="engine.max_tokens_per_micro_batch")
    parser.add_argument("--rollout", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--peak-tflops", type=float, help="the hardware's peak, for MFU")
    parser.add_argument("--out", type=Path, help="work directory (default: var/bench/train-step-ENGINE)")
    args = parser.parse_args()
    out = (args.out or REPO / "var" / "bench" / f"train-step-{args.engine}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(build_spec(args, out), sort_keys=False))
    run_dir = out / "run"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    report(args, run_dir, run_trainer(args, spec_path, run_dir))


if __name__ == "__main__":
    main()
