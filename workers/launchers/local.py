"""The local launcher: a run's trainer as a detached process on this worker host.

``start`` writes the frozen spec into the run directory and starts ``python -m workers.wrapper RUN_DIR --
python -m or1_train run SPEC --out RUN_DIR [--resume]`` with the working directory at the repository (the
examples' relative paths such as ``var/models/cpu-demo`` resolve there), stdout and stderr appended to
``RUN_DIR/trainer.log``, and the ingestion URL and token in the environment. It returns the wrapper's PID,
which is also the process group of everything the run started (see ``workers/wrapper.py``).

``inspect`` says what became of it: still running, exited (``exit_status.json`` written by the wrapper), or
lost (no live process and no exit status: SIGKILL, out of memory, a reboot). ``terminate`` asks it to stop
(SIGTERM to the wrapper, which forwards it to the trainer); ``kill`` SIGKILLs every process of the run.

Nothing here changes the Run row: the Celery tasks and the reconciler decide what a process fact means.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

from workers import processes
from workers.wrapper import EXIT_STATUS_FILE

LOG_FILE = "trainer.log"
SPEC_FILE = "spec.yaml"
#: variables the trainer must not inherit from the worker: it needs no database, broker or Django secret.
PLATFORM_SECRETS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "DJANGO_SECRET_KEY",
    "SLURM_REST_TOKEN",
    "SLURM_JWT",
)


@dataclass(frozen=True)
class Running:
    pid: int


@dataclass(frozen=True)
class Exited:
    exit_code: int
    signal: str | None
    details: dict


@dataclass(frozen=True)
class Lost:
    leftovers: list[int]  # processes of the run still alive without their wrapper (normally none)


def trainer_command(run_dir: Path, *, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "or1_train", "run", str(run_dir / SPEC_FILE), "--out", str(run_dir)]
    return command + (["--resume"] if resume else [])


def trainer_environment(ingest_url: str, token: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in PLATFORM_SECRETS}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env |= {"OR1_INGEST_URL": ingest_url, "OR1_INGEST_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    return env


def start(run_dir: Path, spec: dict, *, ingest_url: str, token: str, resume: bool, header: str) -> int:
    """Start the run's wrapper and trainer; returns the wrapper's PID (the run's process group)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume or not (run_dir / SPEC_FILE).exists():
        (run_dir / SPEC_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
    command = [sys.executable, "-m", "workers.wrapper", str(run_dir), "--", *trainer_command(run_dir, resume=resume)]
    with open(run_dir / LOG_FILE, "ab") as log:
        log.write(f"\n=== {header} ===\n".encode())
        log.flush()
        launcher = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=trainer_environment(ingest_url, token),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        first_line, _ = launcher.communicate(timeout=30)
    if launcher.returncode != 0 or not first_line.strip().isdigit():
        raise RuntimeError(f"the wrapper did not start (exit {launcher.returncode}); see {run_dir / LOG_FILE}")
    return int(first_line.strip())


def inspect(run_dir: Path, pid: int | None) -> Running | Exited | Lost:
    if pid and processes.alive(pid) and processes.mentions(pid, str(run_dir)):
        return Running(pid)
    status_file = run_dir / EXIT_STATUS_FILE
    if status_file.exists():
        details = json.loads(status_file.read_text())
        return Exited(int(details["exit_code"]), details.get("signal"), details)
    return Lost(processes.processes_of(str(run_dir)))


def terminate(run_dir: Path, pid: int | None) -> bool:
    """Ask the run to checkpoint and stop: SIGTERM to the wrapper (or, if it is gone, to what is left)."""
    if pid and processes.alive(pid) and processes.mentions(pid, str(run_dir)):
        os.kill(pid, signal.SIGTERM)
        return True
    return bool(processes.kill_processes_of(str(run_dir), signal.SIGTERM))


def kill(run_dir: Path) -> list[int]:
    """SIGKILL every process of the run (the wrapper's group and anything naming the run directory)."""
    return processes.kill_processes_of(str(run_dir), signal.SIGKILL)


def wait_until_stopped(run_dir: Path, pid: int | None, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not isinstance(inspect(run_dir, pid), Running) and not processes.processes_of(str(run_dir)):
            return True
        time.sleep(0.1)
    return False


def log_error_line(run_dir: Path, tail_bytes: int = 16384) -> str:
    """The trainer's own one-line error (``error: ...``, printed by its CLI) from the end of the log, if any."""
    try:
        with open(run_dir / LOG_FILE, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - tail_bytes))
            lines = handle.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    errors = [line.strip() for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else ""
