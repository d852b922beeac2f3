"""Leaderboard: readable evaluations best first per benchmark, the paper's Table 13 as reference rows."""

from __future__ import annotations

from experiments.models import EvaluationResult
from experiments.views.leaderboard import reference_rows
from tests.platform.api_cast import *  # noqa: F403 (the cast's fixtures)


def test_reference_rows_follow_table_13():
    assert {r["model"]: (r["avg_percent"], r["k"]) for r in reference_rows("AIME24")}["Skywork-OR1-32B"] == (82.2, 32)
    assert {r["model"]: r["avg_percent"] for r in reference_rows("aime_2025")}["DeepSeek-R1-Distill-Qwen-7B"] == 39.2
    assert {r["model"]: (r["avg_percent"], r["k"]) for r in reference_rows("livecodebench")}["Skywork-OR1-7B"] == (
        47.6, 4)
    assert reference_rows("arith") == []


def test_board_ranks_readable_results_and_hides_other_teams(cast, client):
    EvaluationResult.objects.create(run=cast.other_run, benchmark="aime24", k=8, num_samples=240, avg_at_k=0.25,
                                    pass_at_k=0.5, temperature=1.0, step=10)
    EvaluationResult.objects.create(run=cast.own_run, checkpoint=cast.checkpoint, benchmark="aime24", k=8,
                                    num_samples=240, avg_at_k=0.4, pass_at_k=0.6, temperature=1.0, step=4)
    EvaluationResult.objects.create(run=cast.beta_run, benchmark="aime24", k=8, num_samples=240, avg_at_k=0.9,
                                    temperature=1.0)
    client.force_login(cast.users["viewer"])
    page = client.get("/leaderboard/?benchmark=aime24").content.decode()
    board = page[page.index('id="leaderboard"'):page.index('id="reference"')]
    assert board.index("40.0") < board.index("25.0") and "90.0" not in board
    assert "step 4" in board and "240" in board
    assert "82.2" in page and "Table 13" in page
    arith = client.get("/leaderboard/?benchmark=arith").content.decode()
    assert "50.0" in arith and "75.0" in arith and 'id="reference"' not in arith
