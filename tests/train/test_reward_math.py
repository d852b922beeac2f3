"""The binary math reward: Math-Verify on the text after </think>, in a pool that survives stuck and dead
workers."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from or1_train.rewards.math import MathScore, MathVerifier, extract_answer_text, last_boxed

# sympy evaluates this tower for a very long time; only the deadline ends it.
PATHOLOGICAL = "So the answer is $\\boxed{9^{9^{9^{9}}}}$."


# Deadlines that must never fire on a sound answer are many times an idle machine's cost (a cold sympy parse
# is ~60 ms, an algebraic verify ~30 ms), because the test machine may be heavily shared.
SOUND_TIMEOUT_S = 5.0
# The failure tests run their pathological item into the deadline, so theirs is shorter; the innocent items
# next to it still get 50x their idle cost.
SHORT_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(workers=2, timeout_s=SOUND_TIMEOUT_S)
    yield v
    v.close()


def rewards(verifier, pairs):
    return [s.reward for s in verifier.score([r for r, _ in pairs], [g for _, g in pairs])]


def test_extract_answer_text_keeps_what_follows_the_last_think_end():
    assert extract_answer_text("<think>a</think> b </think> c") == " c"
    assert extract_answer_text("no thinking here") == "no thinking here"
    assert extract_answer_text("<think>unfinished") == "<think>unfinished"


def test_last_boxed_balances_braces():
    assert last_boxed("x \\boxed{1} y \\boxed{\\frac{1}{2}} z") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None


def test_correct_and_incorrect_boxed_answers(verifier):
    scores = verifier.score(
        ["so we get \\boxed{42}.", "so we get \\boxed{41}.", "hence $\\boxed{ 7 }$"], ["42", "42", "7"]
    )
    assert [s.reward for s in scores] == [1.0, 0.0, 1.0]
    assert scores[0] == MathScore(1.0, False, "exact_match")
    assert scores[1].reason == "wrong" and not scores[1].timed_out


def test_equivalent_forms_are_verified(verifier):
    pairs = [
        ("The answer is \\boxed{0.5}", "\\frac{1}{2}"),
        ("The answer is \\boxed{\\frac{1}{2}}", "0.5"),
        ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}"),
        ("\\boxed{(x+1)^2}", "x^2+2x+1"),
        ("\\boxed{\\{3,2,1\\}}", "\\{1,2,3\\}"),
        ("\\boxed{\\frac{1}{3}}", "0.5"),
    ]
    assert rewards(verifier, pairs) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_only_the_answer_after_think_counts(verifier):
    response = "<think>maybe \\boxed{5}? no.</think> The answer is \\boxed{7}."
    assert rewards(verifier, [(response, "7"), (response, "5")]) == [1.0, 0.0]
    # a boxed answer only inside the thinking is no answer at all
    score = verifier.score(["<think>\\boxed{5}</think> I am not sure."], ["5"])[0]
    assert score == MathScore(0.0, False, "no_answer")


def test_no_answer_scores_zero(verifier):
    score = verifier.score(["I have no idea what to do here."], ["3"])[0]
    assert score == MathScore(0.0, False, "no_answer")


def test_mismatched_lengths_are_refused(verifier):
    with pytest.raises(ValueError):
        verifier.score(["\\boxed{1}"], [])


def test_a_pathological_answer_times_out_to_zero_and_the_pool_goes_on():
    with MathVerifier(workers=2, timeout_s=1.0) as v:
        assert rewards(v, [("\\boxed{0.5}", "\\frac{1}{2}")]) == [1.0]  # the pool is up and warm
        t0 = time.monotonic()
        scores = v.score([PATHOLOGICAL, "so \\boxed{1/2}"], ["1", "1/2"])
        assert time.monotonic() - t0 < 8  # the 1 s deadline, not sympy, decides when it ends
        assert scores == [MathScore(0.0, True, "timeout"), MathScore(1.0, False, "exact_match")]
        assert v.timeouts == 1 and v.pool_restarts == 0  # the alarm ended it: the worker lives on
        assert rewards(v, [("\\boxed{\\frac{3}{6}}", "0.5")]) == [1.0]


def _workers_of(verifier) -> list[multiprocessing.Process]:
    """Start the pool if needed and return its processes (the test's only spawned children)."""
    verifier.score(["\\boxed{1/3}"], ["0.25"])
    return [p for p in multiprocessing.active_children() if p.name.startswith("SpawnProcess")]


def _score_in_thread(verifier, responses, golds):
    out = {}
    thread = threading.Thread(target=lambda: out.update(scores=verifier.score(responses, golds)))
    thread.start()
    return thread, out


def test_a_stuck_worker_is_killed_and_only_its_item_scores_zero():
    """SIGSTOP stands in for sympy stuck in C code, where no alarm reaches it: only the parent's deadline
    ends it. The innocent item of the same chunk is retried and keeps its real score."""
    with MathVerifier(workers=2, timeout_s=SHORT_TIMEOUT_S, grace_s=0.5) as v:
        workers = _workers_of(v)
        thread, out = _score_in_thread(v, [PATHOLOGICAL, "\\boxed{2/4}"], ["1", "\\frac{1}{2}"])
        time.sleep(0.3)
        for p in workers:
            os.kill(p.pid, signal.SIGSTOP)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert out["scores"][0] == MathScore(0.0, True, "timeout")
        assert out["scores"][1].reward == 1.0
        assert v.pool_restarts >= 1
        assert rewards(v, [("\\boxed{0.25}", "\\frac{1}{4}")]) == [1.0]


def test_a_killed_worker_breaks_the_pool_which_is_replaced():
    with MathVerifier(workers=2, timeout_s=SHORT_TIMEOUT_S, grace_s=0.5) as v:
        workers = _workers_of(v)
        thread, out = _score_in_thread(v, [PATHOLOGICAL, "\\boxed{2/4}"], ["1", "\\frac{1}{2}"])
        time.sleep(0.3)
        for p in workers:
            os.kill(p.pid, signal.SIGKILL)
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert out["scores"][0].reward == 0.0 and out["scores"][0].timed_out
        assert out["scores"][1].reward == 1.0
        assert v.pool_restarts >= 1
        # a worker that dies between calls is found out at the next submit
        for p in _workers_of(v):
            os.kill(p.pid, signal.SIGKILL)
        time.sleep(0.2)
        assert rewards(v, [("\\boxed{0.75}", "\\frac{3}{4}")]) == [1.0]
