"""Run untrusted (model-written) Python programs, one fresh interpreter per run, with bounded concurrency.

`SandboxPool(max_workers)` keeps one helper process per slot (`sandbox_worker.py`, which holds the
privileged setup and documents the isolation levels); `run()` borrows a free slot, so at most
`max_workers` programs run at once, whatever the number of calling threads. `run_sandboxed()` uses a
process-wide pool of the default size (one slot per CPU this process may use).

Each run: a fresh process and interpreter (`python -s -S -P`, the trainer's own interpreter binary, no
site-packages), a scrubbed environment (PATH, HOME, LANG, PYTHONHASHSEED=0 so that set order, and with it
a reward, is reproducible), rlimits on CPU, address space, file size (which caps stdout too), processes
and core files, a wall-clock limit, a fresh private working directory that is gone afterwards, no network,
and at the end every process it started is killed. The parent of the program is the helper, never the
trainer, and under root the program runs as a uid of its own. See docs/sandbox.md for what each isolation
level guarantees and what it does not.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import pwd
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from or1_train.rewards import sandbox_worker
from or1_train.rewards.sandbox_worker import LEVELS, read_frame, write_frame

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(sandbox_worker.__file__).resolve()
# How long past a run's own wall limit the trainer waits for its helper before declaring it hung.
HELPER_GRACE_S = 30.0
_WEAK = ("uid", "hook")
_LEVEL_CACHE: dict[tuple, str] = {}


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits. `cpu_s` defaults to `wall_s`; `output_mb` caps stdout and each file it writes."""

    wall_s: float = 6.0
    cpu_s: float | None = None
    memory_mb: int = 2048
    output_mb: float = 16.0
    disk_mb: int = 64
    nproc: int = 32
    stderr_bytes: int = 8192

    def __post_init__(self):
        for name in ("wall_s", "memory_mb", "output_mb", "disk_mb", "nproc", "stderr_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SandboxLimits.{name} must be positive, got {getattr(self, name)}")
        if self.cpu_s is not None and self.cpu_s <= 0:
            raise ValueError(f"SandboxLimits.cpu_s must be positive, got {self.cpu_s}")

    def wire(self) -> dict:
        return {
            "wall_s": float(self.wall_s),
            "cpu_s": float(self.cpu_s if self.cpu_s is not None else self.wall_s),
            "memory_bytes": int(self.memory_mb) << 20,
            "output_bytes": int(self.output_mb * (1 << 20)),
            "disk_bytes": int(self.disk_mb) << 20,
            "nproc": int(self.nproc),
            "stderr_bytes": int(self.stderr_bytes),
        }


@dataclass(frozen=True)
class SandboxResult:
    """What one run did. `returncode` < 0 is the signal that ended it; `stderr` keeps only its tail.

    `killed_reason`: None (it ended by itself), "timeout" (wall clock), "cpu_limit", "output_limit"
    (stdout reached `output_mb`) or "signal:NAME".
    """

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None
    wall_s: float
    cpu_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.killed_reason is None


class SandboxError(RuntimeError):
    """The sandbox itself failed (a helper could not start or died), as opposed to the program failing."""


class _Helper:
    """The trainer's end of one helper process."""

    def __init__(self, cfg: dict, python: str, run_as: int | None):
        kwargs = {}
        if run_as is not None:
            kwargs = {
                "user": run_as,
                "group": pwd.getpwuid(run_as).pw_gid if _has_account(run_as) else run_as,
                "extra_groups": [],
            }
        self.proc = subprocess.Popen(
            [python, "-s", "-S", "-P", str(WORKER_SCRIPT), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            start_new_session=True,
            close_fds=True,
            **kwargs,
        )
        hello = self._read(time.monotonic() + 30.0)
        if not hello.get("ready"):
            self.kill()
            raise SandboxError(f"sandbox helper could not start: {hello.get('error')}")
        self.level: str = hello["level"]
        self.uid: int | None = hello["uid"]

    def call(self, req: dict, deadline: float) -> dict:
        try:
            write_frame(self.proc.stdin.fileno(), req)
        except OSError as e:  # the helper is gone (broken pipe)
            self.kill()
            raise SandboxError(f"sandbox helper is gone: {e}") from e
        return self._read(deadline)

    def _read(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            self.kill()
            raise SandboxError("sandbox helper did not answer in time")
        msg = read_frame(fd)
        if msg is None:
            self.kill()
            raise SandboxError(f"sandbox helper exited (status {self.proc.wait()})")
        return msg

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL the helper; a program it was running dies with it (its init has a parent-death signal)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class SandboxPool:
    """At most `max_workers` sandboxed programs at a time, each in a fresh interpreter.

    isolation: "auto" (the strongest the host allows: "full" as root, else "userns", else the weak
        fallbacks "uid"/"hook", which log a warning) or one level by name; `level` tells which one runs.
    python: the interpreter programs run with (default: the trainer's own binary, venv resolved).
    run_as: when the trainer is root, run the helpers under this unprivileged uid instead (they then use
        user namespaces, as a non-root trainer does).
    hide_paths: directories the programs must not see. Default: the home directory when programs run as
        the trainer's own uid (levels "userns", "hook"), since that uid can read it.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        isolation: str = "auto",
        python: str | None = None,
        run_as: int | None = None,
        hide_paths: tuple[str, ...] | None = None,
    ):
        if isolation != "auto" and isolation not in LEVELS:
            raise ValueError(f"isolation must be 'auto' or one of {LEVELS}, got {isolation!r}")
        self.max_workers = max_workers or default_workers()
        self.python = python or os.path.realpath(sys.executable)
        self.run_as = run_as
        if hide_paths is None:
            hide_paths = _default_hidden(run_as)
        self._hide = list(hide_paths)
        self._idle: queue.SimpleQueue[_Helper] = queue.SimpleQueue()
        self._helpers: list[_Helper] = []
        self._lock = threading.Lock()
        self._closed = False
        first = self._first_helper(isolation)
        self.level: str = first.level
        self._idle.put(first)
        try:
            for _ in range(self.max_workers - 1):
                self._idle.put(self._start_helper())
        except SandboxError:
            self.close()
            raise

    def _first_helper(self, isolation: str) -> _Helper:
        """Start a helper at `isolation`, or for "auto" at the strongest level this host grants.

        Levels are tried with a fresh helper each (a failed namespace setup leaves its process half-changed),
        and the answer is cached per interpreter and uid, so later pools skip the levels that failed.
        """
        key = (self.python, self.run_as, tuple(self._hide))
        if isolation != "auto":
            candidates = [isolation]
        elif key in _LEVEL_CACHE:
            candidates = [_LEVEL_CACHE[key]]
        else:
            candidates = ["full", "uid"] if os.geteuid() == 0 and self.run_as is None else ["userns", "hook"]
        refused = []
        for level in candidates:
            self.level = level
            try:
                helper = self._start_helper()
                self._probe(helper)
            except SandboxError as exc:
                refused.append(f"{level}: {exc}")
                continue
            if isolation == "auto":
                _LEVEL_CACHE[key] = level
            if level in _WEAK:
                log.warning(
                    "code sandbox runs at the weak isolation level %r (docs/sandbox.md); refused: %s",
                    level,
                    "; ".join(refused) or "-",
                )
            return helper
        raise SandboxError("no sandbox isolation level could start: " + "; ".join(refused))

    def _probe(self, helper: _Helper) -> None:
        """Run one trivial program: a level can start yet fail every run (e.g. an interpreter under /root)."""
        limits = SandboxLimits(wall_s=30.0)
        req = {"code": "print('sandbox-ok')", "stdin": b"", "limits": limits.wire()}
        res = helper.call(req, time.monotonic() + limits.wall_s + HELPER_GRACE_S)
        if res.get("stdout") != b"sandbox-ok\n":
            with self._lock:
                self._helpers.remove(helper)
            helper.kill()
            detail = res.get("error") or res.get("stderr", b"").decode("utf-8", "replace").strip()
            raise SandboxError(f"a trivial program failed: {detail}")

    def _start_helper(self) -> _Helper:
        helper = _Helper({"isolation": self.level, "hide_paths": self._hide}, self.python, self.run_as)
        with self._lock:
            self._helpers.append(helper)
        return helper

    def run(self, code: str, *, stdin: str = "", limits: SandboxLimits | None = None) -> SandboxResult:
        """Run `code` as `__main__` with `stdin`; blocks until a slot is free and the program has ended."""
        limits = limits or SandboxLimits()
        req = {"code": code, "stdin": stdin.encode("utf-8", "surrogateescape"), "limits": limits.wire()}
        helper = self._borrow()
        try:
            res = helper.call(req, time.monotonic() + limits.wall_s + HELPER_GRACE_S)
        except SandboxError:
            self._replace(helper)
            raise
        self._idle.put(helper)
        if "error" in res:
            raise SandboxError(f"sandbox run failed: {res['error']}")
        return SandboxResult(
            returncode=res["returncode"],
            stdout=res["stdout"].decode("utf-8", "replace"),
            stderr=("[...]" if res["stderr_truncated"] else "") + res["stderr"].decode("utf-8", "replace"),
            timed_out=res["timed_out"],
            killed_reason=res["killed_reason"],
            wall_s=res["wall_s"],
            cpu_s=res["cpu_s"],
        )

    def _borrow(self) -> _Helper:
        while True:
            with self._lock:
                if self._closed or not self._helpers:
                    raise SandboxError("the sandbox pool is closed or has no live helper")
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                continue

    def _replace(self, dead: _Helper) -> None:
        with self._lock:
            self._helpers.remove(dead)
            if self._closed:
                return
        try:
            self._idle.put(self._start_helper())
        except SandboxError:
            log.exception("could not replace a dead sandbox helper; the pool has one slot less")

    @property
    def sandbox_uids(self) -> list[int]:
        """The uids this pool's programs run as (levels "full", "uid"); empty if they run as the trainer's."""
        with self._lock:
            return [h.uid for h in self._helpers if h.uid is not None]

    @property
    def helper_pids(self) -> list[int]:
        """The helper processes' pids (they run as `run_as` or root, never as a program's uid)."""
        with self._lock:
            return [h.proc.pid for h in self._helpers]

    def close(self) -> None:
        self._closed = True
        with self._lock:
            helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool behind `run_sandboxed`, started on first use and closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SandboxPool()
            atexit.register(_default.close)
        return _default


def run_sandboxed(code: str, *, stdin: str = "", limits: SandboxLimits | None = None) -> SandboxResult:
    """Run one program in the process-wide sandbox pool (see `SandboxPool.run`)."""
    return default_pool().run(code, stdin=stdin, limits=limits)


def _default_hidden(run_as: int | None) -> tuple[str, ...]:
    """The home directory of the uid programs would run as, unless they get a uid of their own (root)."""
    if run_as is None:
        home = None if os.geteuid() == 0 else str(Path.home())
    else:
        home = pwd.getpwuid(run_as).pw_dir if _has_account(run_as) else None
    return (home,) if home and os.path.isdir(home) else ()


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
