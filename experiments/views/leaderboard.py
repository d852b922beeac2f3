"""Leaderboard per benchmark: every evaluation the user may read, best first, next to the paper's numbers;
the "Evaluate" button and the team's latest evaluation jobs with their status.

The reference rows are Skywork-OR1's Table 13 (arXiv 2505.22312, dossier §6.2): AIME24/AIME25 avg@32 and
LiveCodeBench (2024-08-01 to 2025-02-01) avg@4 at 32K tokens. They sit on the board of a benchmark whose
name says which one it is (aime24, aime25, livecodebench/lcb), always shown with their k, because an avg@8
of a CPU run and an avg@32 of the paper are not the same measurement.
"""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from experiments.access import readable_checkpoints, readable_runs, team_ids
from experiments.models import EvaluationJob, EvaluationResult

CITATION = "Skywork-OR1 Technical Report (arXiv 2505.22312), Table 13"
# model: (AIME24 avg@32, AIME25 avg@32, LiveCodeBench 2408-2502 avg@4), in percent
PAPER = {
    "DeepSeek-R1-Distill-Qwen-7B": (55.5, 39.2, 37.6),
    "Skywork-OR1-Math-7B": (69.8, 52.3, 43.6),
    "Skywork-OR1-7B": (70.2, 54.6, 47.6),
    "DeepSeek-R1-Distill-Qwen-32B": (72.9, 59.0, 57.2),
    "Skywork-OR1-32B": (82.2, 73.3, 63.0),
}
_COLUMNS = ((re.compile(r"aime[-_ ]?(20)?24"), 0, 32), (re.compile(r"aime[-_ ]?(20)?25"), 1, 32),
            (re.compile(r"livecodebench|lcb"), 2, 4))


def reference_rows(benchmark: str) -> list[dict]:
    """The paper's rows for this benchmark (none when the name matches no paper benchmark)."""
    for pattern, column, k in _COLUMNS:
        if pattern.search(benchmark.lower()):
            return [{"model": m, "avg_percent": v[column], "k": k} for m, v in PAPER.items()]
    return []


def readable_results(user):
    """Results of runs and checkpoints the user may read, and of their teams' evaluation jobs (HF models)."""
    return EvaluationResult.objects.filter(
        Q(run__in=readable_runs(user)) | Q(checkpoint__in=readable_checkpoints(user))
        | Q(job__team_id__in=team_ids(user))
    ).select_related("run__experiment", "checkpoint", "job")


@login_required
def leaderboard(request: HttpRequest) -> HttpResponse:
    results = readable_results(request.user)
    benchmarks = sorted(set(results.values_list("benchmark", flat=True)) | {"aime24", "aime25", "livecodebench"})
    benchmark = request.GET.get("benchmark") or benchmarks[0]
    rows = [
        {"result": r, "avg_percent": 100.0 * r.avg_at_k,
         "pass_percent": None if r.pass_at_k is None else 100.0 * r.pass_at_k}
        for r in results.filter(benchmark=benchmark).order_by("-avg_at_k", "id")
    ]
    context = {"benchmarks": benchmarks, "benchmark": benchmark, "rows": rows,
               "references": reference_rows(benchmark), "citation": CITATION,
               "jobs": EvaluationJob.objects.visible_to(request.user).select_related("checkpoint")[:10]}
    return render(request, "experiments/leaderboard.html", context)
