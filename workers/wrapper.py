"""``python -m workers.wrapper RUN_DIR -- TRAINER COMMAND...``: run a trainer detached and record how it ended.

The local launcher starts this from a Celery task, which must return in seconds while the run takes days.

1. It forks; the first process prints the second's PID and exits at once, so the task reaps it and the
   wrapper is adopted by init: the Celery worker never holds a zombie of a finished run, and a restart of
   the worker leaves the run alone.
2. The wrapper starts a session of its own (``setsid``): its PID is the process group of the run, which
   the launcher SIGKILLs as a whole after a cancel's grace period, or when a run was lost.
3. It starts the trainer with stdout and stderr on the run's log (the launcher's stderr) and with a
   parent-death signal, so a SIGKILLed wrapper never leaves a trainer running unsupervised.
4. SIGTERM (and SIGINT) are forwarded to the trainer alone, which checkpoints and exits 143. Only the
   trainer: its helpers (reward workers, a multi-process vLLM engine) would die of a group-wide SIGTERM
   before the trainer had finished its step and saved.
5. When the trainer exits, it writes ``RUN_DIR/exit_status.json`` (atomically) and exits with the same
   code. A run whose wrapper is gone without that file was lost (killed, out of memory, host rebooted).

Only the standard library is imported: no Django, so it starts in milliseconds.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXIT_STATUS_FILE = "exit_status.json"
_PR_SET_PDEATHSIG = 1


def exit_code_of(returncode: int) -> tuple[int, str | None]:
    """Popen's return code as a shell would report it (128 + N for signal N) and the signal's name."""
    if returncode < 0:
        return 128 - returncode, signal.Signals(-returncode).name
    return returncode, None


def write_exit_status(run_dir: Path, status: dict) -> None:
    tmp = run_dir / f".{EXIT_STATUS_FILE}.tmp"
    tmp.write_text(json.dumps(status))
    tmp.replace(run_dir / EXIT_STATUS_FILE)


def _die_with_parent() -> None:
    """In the trainer, before exec: get SIGKILL when the wrapper dies (Linux; elsewhere nothing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def supervise(run_dir: Path, command: list[str]) -> int:
    started = time.time()
    trainer = subprocess.Popen(command, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

    def forward(signum, frame):  # noqa: ARG001 - signal handler signature
        try:
            trainer.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    returncode = trainer.wait()
    code, signame = exit_code_of(returncode)
    write_exit_status(
        run_dir,
        {
            "exit_code": code,
            "signal": signame,
            "trainer_pid": trainer.pid,
            "wrapper_pid": os.getpid(),
            "started_at": started,
            "finished_at": time.time(),
        },
    )
    print(f"[wrapper] trainer exited with code {code}" + (f" ({signame})" if signame else ""), flush=True)
    return code


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m workers.wrapper RUN_DIR -- COMMAND...", file=sys.stderr)
        return 2
    run_dir, command = Path(argv[0]), argv[2:]
    (run_dir / EXIT_STATUS_FILE).unlink(missing_ok=True)
    child = os.fork()
    if child:
        print(child, flush=True)  # the launcher reads the wrapper's PID from here
        return 0
    os.setsid()
    os.dup2(2, 1)  # stdout was the launcher's pipe; from now on everything goes to the run's log
    return supervise(run_dir, command)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # the forked child must not run the parent's atexit handlers
