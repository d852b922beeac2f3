"""The trainer wrapper and the reconciler's reading of it, with real processes (a few lines of Python stand in
for the trainer's exit behaviour; the real trainer is in test_local_launcher.py).

The wrapper detaches (the launcher reaps its first process at once), owns a process group, forwards SIGTERM
to its command only, records how the command ended in exit_status.json, and takes its command with it when
it is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.models import RunStatus
from workers import processes
from workers.launchers import local
from workers.reconcile import reconcile_run

REPO = Path(__file__).resolve().parents[2]
#: exits 143 on SIGTERM after "checkpointing", as the trainer does; prints its PID first
GRACEFUL = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (print('saving', flush=True), sys.exit(143)))\n"
    "print(os.getpid(), flush=True)\n"
    "time.sleep(60)\n"
)


def start_wrapper(run_dir: Path, code: str) -> int:
    """Start ``python -c code`` under the wrapper as the launcher does; returns the wrapper's PID."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "trainer.log", "ab") as log:
        first = subprocess.run(
            [sys.executable, "-m", "workers.wrapper", str(run_dir), "--", sys.executable, "-c", code, str(run_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=log,
            check=True,
            timeout=30,
        )
    return int(first.stdout)


def child_pid(run_dir: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = (run_dir / "trainer.log").read_text().split()
        if lines and lines[0].isdigit():
            return int(lines[0])
        time.sleep(0.05)
    pytest.fail("the command never printed its PID")


def wait_gone(pid: int, timeout: float = 15) -> None:
    """Until ``os.kill(pid, 0)`` fails: exited and reaped (PID 1 adopts the wrapper and reaps it late)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} is still there ({processes.state(pid)})")


def exit_status(run_dir: Path) -> dict:
    deadline = time.monotonic() + 20
    while not (run_dir / "exit_status.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return json.loads((run_dir / "exit_status.json").read_text())


def test_sigterm_is_forwarded_and_the_exit_status_recorded(tmp_path):
    run_dir = tmp_path / "run-1"
    wrapper = start_wrapper(run_dir, GRACEFUL)
    trainer = child_pid(run_dir)
    assert os.getpgid(wrapper) == wrapper == os.getpgid(trainer) and os.getsid(wrapper) == wrapper
    assert processes.mentions(wrapper, str(run_dir)) and sorted(processes.processes_of(str(run_dir))) == sorted(
        [wrapper, trainer]
    )
    assert isinstance(local.inspect(run_dir, wrapper), local.Running)

    assert local.terminate(run_dir, wrapper)
    status = exit_status(run_dir)
    assert (status["exit_code"], status["signal"], status["trainer_pid"]) == (143, None, trainer)
    wait_gone(wrapper)
    wait_gone(trainer)
    assert local.inspect(run_dir, wrapper) == local.Exited(143, None, status)
    log = (run_dir / "trainer.log").read_text()
    assert "saving" in log and "[wrapper] trainer exited with code 143" in log


def test_a_command_killed_by_a_signal_reports_128_plus_the_signal(tmp_path):
    run_dir = tmp_path / "run-2"
    start_wrapper(run_dir, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    status = exit_status(run_dir)
    assert (status["exit_code"], status["signal"]) == (137, "SIGKILL")


def test_a_sigkilled_wrapper_takes_its_command_along_and_the_run_counts_as_lost(tmp_path):
    run_dir = tmp_path / "run-3"
    wrapper = start_wrapper(run_dir, GRACEFUL)
    trainer = child_pid(run_dir)
    os.kill(wrapper, signal.SIGKILL)  # the wrapper only: the parent-death signal must stop the trainer
    wait_gone(trainer)
    wait_gone(wrapper)
    assert not (run_dir / "exit_status.json").exists()
    assert local.inspect(run_dir, wrapper) == local.Lost([])


def test_kill_stops_every_process_of_the_run_and_nothing_else(tmp_path):
    run_dir, other_dir = tmp_path / "run-4", tmp_path / "run-40"  # run-40 starts with "run-4": not the same
    wrappers = [start_wrapper(run_dir, GRACEFUL), start_wrapper(other_dir, GRACEFUL)]
    trainers = [child_pid(run_dir), child_pid(other_dir)]
    try:
        assert sorted(local.kill(run_dir)) == sorted([wrappers[0], trainers[0]])
        wait_gone(trainers[0])
        assert processes.alive(wrappers[1]) and processes.alive(trainers[1])
    finally:
        local.kill(other_dir)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("import sys; sys.exit(0)", RunStatus.SUCCEEDED, "the trainer finished"),
        (
            "import sys; print('error: ValueError: stage 2 has no data', file=sys.stderr); sys.exit(1)",
            RunStatus.FAILED,
            "the trainer exited with code 1: ValueError: stage 2 has no data (see trainer.log)",
        ),
        ("import sys; sys.exit(143)", RunStatus.CANCELLED, "the trainer checkpointed and stopped on SIGTERM"),
    ],
)
def test_the_reconciler_records_how_the_trainer_ended(run, settings, tmp_path, code, status, reason):
    settings.OR1_RUNS_DIR = tmp_path
    run_dir = tmp_path / f"run-{run.pk}"
    run.transition_to(RunStatus.STARTING)
    run.run_dir, run.host, run.pid = str(run_dir), "here", start_wrapper(run_dir, code)
    run.save()
    exit_status(run_dir)
    wait_gone(run.pid)
    reconcile_run(run)
    run.refresh_from_db()
    assert (run.status, run.status_reason) == (status, reason)
    assert run.exit_code == json.loads((run_dir / "exit_status.json").read_text())["exit_code"]


@pytest.mark.django_db
def test_a_lost_run_without_restarts_left_fails_with_the_reason(run, tmp_path):
    run.spec_as_launched["resources"]["max_restarts"] = 0
    run.transition_to(RunStatus.STARTING)
    run.transition_to(RunStatus.RUNNING)
    run.run_dir, run.pid = str(tmp_path / "gone"), 999_999_999
    run.save()
    assert reconcile_run(run) == RunStatus.FAILED
    run.refresh_from_db()
    assert "without an exit status" in run.status_reason and "no restarts left (0 of 0 used)" in run.status_reason
