"""Facts about local processes, read from ``/proc``: alive or not, their command lines, their process groups.

Why not just ``os.kill(pid, 0)``: a process that has exited but not yet been reaped (a zombie) still
answers it, and PID 1 on our machines reaps orphans late; and a PID can be reused by an unrelated process
once its owner is gone. So a trainer counts as alive only while a non-zombie process with that PID still
names the run directory in its command line, and signals go only to process groups that hold such a process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, D, Z, ...), or None when there is no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    return state(pid) not in (None, "Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def mentions(pid: int, directory: str) -> bool:
    """Whether ``pid``'s command line names ``directory`` or a path inside it."""
    inside = directory.rstrip("/") + "/"
    return any(arg == directory or arg.startswith(inside) for arg in cmdline(pid))


def group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def processes_of(directory: str) -> list[int]:
    """Live processes (not this one) whose command line names ``directory``: a run's wrapper and trainer."""
    me = os.getpid()
    return [pid for pid in pids() if pid != me and alive(pid) and mentions(pid, directory)]


def kill_processes_of(directory: str, sig: int = signal.SIGKILL, wait_s: float = 5.0) -> list[int]:
    """Send ``sig`` to the process group of every process that names ``directory``, and to that process.

    Returns the PIDs that were signalled; with SIGKILL, waits up to ``wait_s`` until they are gone.
    """
    found = processes_of(directory)
    for group in {group_of(pid) for pid in found} - {None, os.getpgrp()}:
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass
    for pid in found:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + wait_s
        while any(alive(pid) for pid in found) and time.monotonic() < deadline:
            time.sleep(0.05)
    return found
