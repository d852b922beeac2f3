"""Print the recipe's quality bar for a finished run directory (issue 3's CPU demo criteria).

    .venv/bin/python bench/demo_quality.py RUN_DIR

- mean training reward over the last 10% of steps vs the first 10%;
- entropy (the controller's signal) against its target over the second half: share of steps within +-20%;
- eval avg@k at the start vs the end;
- truncation ratio in the last steps of each stage and the first steps of the next.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from or1_train.telemetry import read_jsonl  # noqa: E402


def main(run_dir: Path) -> None:
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    records = read_jsonl(run_dir / "metrics.jsonl")
    train = [r for r in records if "critic/score/mean" in r["metrics"]]
    evals = [r for r in records if any(k.startswith("val/") and "/avg@" in k for k in r["metrics"])]
    n = len(train)
    tenth = max(1, n // 10)
    first = sum(r["metrics"]["critic/score/mean"] for r in train[:tenth]) / tenth
    last = sum(r["metrics"]["critic/score/mean"] for r in train[-tenth:]) / tenth
    print(f"steps: {n}")
    print(f"training reward: first 10% {first:.3f}, last 10% {last:.3f}, gain {last - first:+.3f}")

    signal = (
        "actor/entropy_loss"
        if spec["entropy"].get("signal", "sampled-token-nll") == "sampled-token-nll"
        else "actor/entropy"
    )
    target = spec["entropy"]["target"]
    half = [r["metrics"][signal] for r in train[n // 2 :] if isinstance(r["metrics"].get(signal), float)]
    inside = sum(abs(e - target) <= 0.2 * target for e in half)
    mean = sum(half) / max(len(half), 1)
    print(
        f"entropy ({signal}) second half: mean {mean:.3f} vs target {target} ({mean / target - 1:+.1%}); "
        f"{inside}/{len(half)} steps within +-20%"
    )

    for r in (evals[0], evals[-1]) if evals else ():
        scores = {k: round(v, 3) for k, v in r["metrics"].items() if "/avg@" in k or "/pass@" in k}
        print(f"eval at step {r['step']}: {scores}")

    start = 0
    for i, stage in enumerate(spec["stages"]):
        rows = train[start : start + stage["steps"]]
        clip = [r["metrics"]["response_length/clip_ratio"] for r in rows]
        if clip:
            k = max(1, len(clip) // 4)
            print(
                f"stage {i} (max {stage['max_response_tokens']} tokens): truncation first {sum(clip[:k]) / k:.2f}, "
                f"last {sum(clip[-k:]) / k:.2f}"
            )
        start += stage["steps"]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
