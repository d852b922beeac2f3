"""What the charts show: the run page's panels, each metric's meaning for the summary table, defaults.

The run page's panels follow the questions a researcher asks of a Skywork-OR1 run, in order: is entropy held
at its target (and how hard is the controller pushing), is reward rising, what do the benchmarks say, are
answers getting truncated, is the update well-behaved, how much of each batch is filtered away, where does
the time go. The metric names are the trainer's (docs/metrics.md).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from django.conf import settings

SIGNALS = {"sampled-token-nll": "actor/entropy_loss", "full-vocab-entropy": "actor/entropy"}
EVAL = re.compile(r"^val/(?P<set>.+)/(?P<kind>avg|pass)@(?P<k>\d+)$")

HIGHER_IS_BETTER = re.compile(r"^(critic/score/|train/accuracy$|val/.+/(avg|pass)@\d+$|perf/tokens_per_s$)")
LOWER_IS_BETTER = re.compile(
    r"^(response_length/clip_ratio$|batch/(solve_none|solve_all|without_adv)_ratio$|val/.+/truncated_ratio$|"
    r"timing_s/)"
)


def direction(name: str) -> int:
    """+1 when higher is better, -1 when lower is, 0 when neither (entropy: it should sit at its target)."""
    if HIGHER_IS_BETTER.match(name):
        return 1
    if LOWER_IS_BETTER.match(name):
        return -1
    return 0


@dataclass
class Trace:
    name: str
    label: str
    axis: str = "y"  # "y2": the panel's right-hand axis
    dash: str = "solid"


@dataclass
class Panel:
    id: str
    title: str
    traces: list[Trace]
    y_title: str = ""
    y2_title: str = ""
    #: horizontal guides: {"y": value, "label": text} lines and {"y0", "y1", "label"} bands
    guides: list[dict] = field(default_factory=list)
    #: draw each stage's max_response_tokens as a stepped line (the truncation limit)
    stage_limit: bool = False

    def names(self) -> list[str]:
        return [t.name for t in self.traces]


def entropy_signal(spec: dict) -> str:
    return SIGNALS.get(spec.get("entropy", {}).get("signal", ""), "actor/entropy_loss")


def target_band(spec: dict) -> dict | None:
    """The entropy target and the healthy band around it (the collapse and explosion alert thresholds)."""
    entropy = spec.get("entropy", {})
    target = entropy.get("target")
    if not entropy.get("enabled", True) or not isinstance(target, int | float):
        return None
    return {
        "target": target,
        "low": target * settings.OR1_ALERT_ENTROPY_COLLAPSE_FRACTION,
        "high": target * settings.OR1_ALERT_ENTROPY_EXPLOSION_MULTIPLE,
    }


def eval_sets(names: list[str]) -> dict[str, list[tuple[str, int, str]]]:
    """``{set: [(kind, k, name)]}`` from ``val/<set>/avg@<k>`` and ``val/<set>/pass@<k>`` names."""
    sets: dict[str, list[tuple[str, int, str]]] = {}
    for name in names:
        match = EVAL.match(name)
        if match:
            sets.setdefault(match["set"], []).append((match["kind"], int(match["k"]), name))
    return {key: sorted(value) for key, value in sorted(sets.items())}


def run_panels(spec: dict, eval_names: list[str]) -> list[Panel]:
    signal = entropy_signal(spec)
    other = "actor/entropy" if signal == "actor/entropy_loss" else "actor/entropy_loss"
    band = target_band(spec)
    guides = []
    if band:
        guides = [
            {"y0": band["low"], "y1": band["high"], "label": "healthy band (alert thresholds)"},
            {"y": band["target"], "label": f"target {band['target']:g}"},
        ]
    panels = [
        Panel(
            "entropy",
            "Entropy against its target",
            [
                Trace(signal, f"{signal} (controlled)"),
                Trace(other, other, dash="dot"),
                Trace("actor/entropy_coeff", "coefficient c_k", axis="y2", dash="dash"),
                Trace("actor/entropy_coeff_realized", "applied alpha_k (gated)", axis="y2"),
            ],
            y_title="entropy (nats/token)",
            y2_title="entropy coefficient",
            guides=guides,
        ),
        Panel(
            "reward",
            "Training reward and accuracy",
            [Trace("critic/score/mean", "mean reward"), Trace("train/accuracy", "accuracy", dash="dot")],
        ),
    ]
    for set_name, entries in eval_sets(eval_names).items():
        panels.append(
            Panel(
                f"eval-{set_name}",
                f"Evaluation: {set_name}",
                [Trace(name, f"{kind}@{k}", dash="solid" if kind == "avg" else "dot") for kind, k, name in entries],
            )
        )
    panels += [
        Panel(
            "length",
            "Response length and truncation",
            [
                Trace("response_length/mean", "mean length"),
                Trace("response_length/max", "max length", dash="dot"),
                Trace("response_length/clip_ratio", "truncated share", axis="y2"),
            ],
            y_title="tokens",
            y2_title="truncated share",
            stage_limit=True,
        ),
        Panel(
            "ppo",
            "Update: clip fraction and approximate KL",
            [Trace("actor/pg_clipfrac", "clip fraction"), Trace("actor/ppo_kl", "approx KL", axis="y2")],
            y2_title="approx KL",
        ),
        Panel(
            "optim",
            "Gradient norm and learning rate",
            [Trace("actor/grad_norm", "grad norm (before clipping)"), Trace("actor/lr", "learning rate", axis="y2")],
            y2_title="learning rate",
        ),
        Panel(
            "filter",
            "Group filter ratios",
            [
                Trace("batch/solve_none_ratio", "solve none"),
                Trace("batch/solve_all_ratio", "solve all"),
                Trace("batch/without_adv_ratio", "without advantage", dash="dot"),
            ],
        ),
        Panel(
            "timing",
            "Time per phase and throughput",
            [
                Trace("timing_s/gen", "rollout + reward"),
                Trace("timing_s/old_log_prob", "old log-probs"),
                Trace("timing_s/update_actor", "update"),
                Trace("timing_s/weight_sync", "weight sync"),
                Trace("timing_s/eval", "evaluation", dash="dot"),
                Trace("perf/tokens_per_s", "tokens/s", axis="y2", dash="dash"),
            ],
            y_title="seconds",
            y2_title="tokens/s",
        ),
    ]
    return panels


def panels_json(panels: list[Panel]) -> list[dict]:
    return [asdict(panel) for panel in panels]


def compare_defaults(spec: dict, names: list[str]) -> list[str]:
    """The metrics a new comparison starts with: the controlled entropy, reward, the first benchmark, truncation."""
    wanted = [entropy_signal(spec), "critic/score/mean"]
    evals = eval_sets(names)
    if evals:
        wanted += [name for kind, _, name in next(iter(evals.values())) if kind == "avg"][:1]
    wanted.append("response_length/clip_ratio")
    return [name for name in wanted if name in names] or names[:3]
