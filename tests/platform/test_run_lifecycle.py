"""The run status lifecycle: only the allowed transitions happen, each is recorded, races lose cleanly."""

from __future__ import annotations

import itertools

import pytest

from experiments.models import InvalidTransition, Run, RunEvent, RunStatus

S = RunStatus
#: The lifecycle, written out edge by edge independently of the model's table.
EXPECTED_EDGES = {
    (S.QUEUED, S.STARTING),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.CANCELLED),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.SUCCEEDED),
    (S.STARTING, S.FAILED),
    (S.STARTING, S.CANCELLING),
    (S.STARTING, S.QUEUED),
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLING),
    (S.RUNNING, S.QUEUED),
    (S.CANCELLING, S.CANCELLED),
    (S.CANCELLING, S.SUCCEEDED),
    (S.CANCELLING, S.FAILED),
    (S.FAILED, S.QUEUED),  # resumed from a checkpoint (experiments.actions.resume_run)
    (S.CANCELLED, S.QUEUED),
}


def test_allowed_transitions_are_exactly_the_lifecycle(run):
    for current, target in itertools.product(S, S):
        run.status = current
        assert run.can_transition_to(target) == ((current, target) in EXPECTED_EDGES), (current, target)


@pytest.mark.parametrize("terminal", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
def test_a_finished_run_never_moves_again_except_back_to_the_queue(run, terminal):
    """A late report never revives an ended run; only a resume (failed or cancelled) requeues it."""
    path = {
        S.SUCCEEDED: [S.STARTING, S.RUNNING, S.SUCCEEDED],
        S.FAILED: [S.FAILED],
        S.CANCELLED: [S.CANCELLED],
    }
    for status in path[terminal]:
        run.transition_to(status)
    for target in S:
        if terminal != S.SUCCEEDED and target == S.QUEUED:
            continue
        with pytest.raises(InvalidTransition, match=f"cannot go from {terminal} to {target}"):
            run.transition_to(target)
    assert Run.objects.get(pk=run.pk).status == terminal


@pytest.mark.parametrize("terminal", [S.FAILED, S.CANCELLED])
def test_requeueing_an_ended_run_clears_its_end(run, terminal):
    run.transition_to(S.STARTING)
    run.transition_to(S.RUNNING)
    if terminal == S.CANCELLED:
        run.transition_to(S.CANCELLING)
    run.transition_to(terminal, exit_code=143)
    assert run.finished_at is not None
    run.transition_to(S.QUEUED, reason="resumed by alice from checkpoint step 2")
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.finished_at, stored.exit_code, stored.restarts) == (S.QUEUED, None, None, 1)
    assert stored.started_at is not None and not stored.is_terminal
    # the end it had stays in its history
    assert stored.events.filter(data__to=terminal, data__exit_code=143).exists()


def test_transitions_set_timestamps_exit_code_and_events(run):
    assert run.started_at is None and run.finished_at is None
    run.transition_to(S.STARTING, reason="submitted to the local worker")
    assert run.started_at is None
    run.transition_to(S.RUNNING)
    started = run.started_at
    assert started is not None and run.finished_at is None
    run.transition_to(S.FAILED, reason="trainer crashed", exit_code=3)

    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.exit_code, stored.status_reason) == (S.FAILED, 3, "trainer crashed")
    assert stored.started_at == started and stored.finished_at >= started
    moves = [e.data for e in stored.events.filter(kind=RunEvent.Kind.STATUS, data__has_key="from")]
    assert [(m["from"], m["to"]) for m in moves] == [
        ("queued", "starting"),
        ("starting", "running"),
        ("running", "failed"),
    ]
    assert moves[-1]["exit_code"] == 3


def test_requeue_after_a_lost_worker_counts_a_restart(run):
    run.transition_to(S.STARTING)
    run.transition_to(S.RUNNING)
    run.transition_to(S.QUEUED, reason="worker lost")
    assert run.restarts == 1 and Run.objects.get(pk=run.pk).restarts == 1
    assert run.started_at is not None  # the first start is kept across a relaunch


def test_a_stale_copy_cannot_overwrite_a_concurrent_change(run):
    reconciler, canceller = Run.objects.get(pk=run.pk), Run.objects.get(pk=run.pk)
    reconciler.transition_to(S.STARTING)
    with pytest.raises(InvalidTransition, match="changed to starting meanwhile"):
        canceller.transition_to(S.CANCELLED)
    stored = Run.objects.get(pk=run.pk)
    assert stored.status == S.STARTING
    assert not stored.events.filter(data__to="cancelled").exists()


def test_ingest_token_is_stored_hashed_and_checked(run):
    token = run.issue_ingest_token()
    stored = Run.objects.get(pk=run.pk)
    assert token not in stored.ingest_token_hash and len(stored.ingest_token_hash) == 64
    assert stored.check_ingest_token(token)
    assert not stored.check_ingest_token(token + "x")
    assert not Run(ingest_token_hash="").check_ingest_token("")
