"""The privileged half of the code sandbox: one long-lived helper process per pool slot.

`sandbox.py` starts this file as a script (`python -s -S -P sandbox_worker.py CONFIG`), so it imports only
the standard library and nothing of `or1_train`. It reads framed requests on stdin, runs each program once,
and answers with a framed result on stdout. Why a helper instead of `subprocess` in the trainer: forking a
trainer that holds gigabytes of tensors and dozens of threads is slow and unsafe with a `preexec_fn`; this
process is small and single-threaded, so fork-then-exec costs well under a millisecond, and every program
still starts as a fresh interpreter (`execve`), never as a fork of anything that saw other programs.

Isolation levels (the strongest the host allows is chosen at start and reported back; docs/sandbox.md):

- `full` (trainer is root): the helper takes a dedicated uid (60000 + n, one per slot, held with a lock
  file) and lives in its own network namespace (no interface up, so no network) and mount namespace where
  the whole tree is read-only (and the interpreter's prefix is bind-mounted back if an ancestor such as
  /root hides it from other users). Each program gets its own PID, mount and IPC namespaces: a fresh /proc
  that shows only its own processes, a fresh size-limited tmpfs on /tmp (its working directory and HOME)
  and on /dev/shm. It runs under that uid with no supplementary groups, `no_new_privs`, rlimits (CPU,
  address space, file size, processes, no core files), a scrubbed environment and `-s -S -P`. When its
  first process exits or the wall clock runs out, the PID namespace's init dies and the kernel kills every
  process left in it, daemons included; then everything of the uid is killed once more (`kill(-1)` from a
  process of that uid). The trainer runs as root, so the program can signal nothing of it.
- `userns` (not root, unprivileged user namespaces allowed): the same namespaces, owned by a user
  namespace that maps only the trainer's own uid; the program runs as that uid but holds no capability.
  It cannot reach the trainer (PID namespace), the network or any file outside its tmpfs for writing, but
  it can read what the trainer's uid can read, except the hidden paths (the home directory by default).
- `uid` (root, but namespaces refused, e.g. a container without CAP_SYS_ADMIN): dedicated uid and
  rlimits, a private working directory, and an audit hook that refuses sockets, new processes, signals
  and writes outside the working directory. Weaker: the hook guards only Python-level calls.
- `hook` (neither): the audit hook and rlimits alone. A seatbelt, not a sandbox.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import pickle
import pwd
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

LEVELS = ("full", "userns", "uid", "hook")
UID_BASE = 60000
UID_SLOTS = 1000
LOCK_DIR = "/run/lock/or1-sandbox" if os.path.isdir("/run/lock") else os.path.join(tempfile.gettempdir(), "or1-sandbox")

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x1000, 0x4000, 1 << 18
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, AT_RECURSIVE = 0x1, 0x2, 0x8000
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (syscalls >= 424 are unified)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38

_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(
        _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {target}",
    )


def _prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


def _readonly_tree() -> None:
    """Make every mount of this mount namespace read-only and nosuid in one call."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    _check(
        _libc.syscall(SYS_MOUNT_SETATTR, -100, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)),
        "mount_setattr",
    )


# ----------------------------------------------------------------------------------------- framing


def read_frame(fd: int):
    head = _read_exact(fd, 8)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0])
    if body is None:
        return None
    return pickle.loads(body)


def write_frame(fd: int, obj) -> None:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<Q", len(body)) + body)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------------------------------- setup


class Worker:
    """One slot: its isolation level, its uid, and the file descriptors of its protocol."""

    def __init__(self, config: dict):
        self.python = os.path.realpath(sys.executable)
        self.cfg = config
        self.uid: int | None = None  # the uid programs run as, when this helper can switch uid
        self.lock_fd: int | None = None
        self.level = self._setup(config["isolation"])
        self.nproc_base = 0 if self.level in ("full", "uid") else _tasks_of_uid(os.getuid())

    def _setup(self, level: str) -> str:
        """Set this helper up at exactly `level` (the trainer retries a weaker one with a new helper)."""
        if level not in LEVELS:
            raise ValueError(f"unknown isolation level {level!r}")
        if level in ("full", "uid"):
            if os.geteuid() != 0:
                raise PermissionError(errno.EPERM, f"isolation {level!r} needs root")
            self._take_uid()
        elif os.geteuid() == 0:
            raise PermissionError(errno.EPERM, f"isolation {level!r} would run programs as root (use run_as)")
        if level in ("full", "userns"):
            self._enter_namespaces(userns=level == "userns")
        return level

    def _take_uid(self) -> None:
        """Hold the lock of a free uid in the reserved range for the whole life of this helper.

        A uid is free when no account has it, no process runs as it, and no other helper holds its lock, so
        that `kill(-1)` as that uid can only ever hit this slot's programs.
        """
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        running = _uids_running()
        for uid in range(UID_BASE, UID_BASE + UID_SLOTS):
            if uid in running or _has_account(uid):
                continue
            fd = os.open(os.path.join(LOCK_DIR, f"{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self.lock_fd = uid, fd
            return
        raise OSError(errno.EAGAIN, f"no free sandbox uid in {UID_BASE}..{UID_BASE + UID_SLOTS - 1}")

    def _enter_namespaces(self, userns: bool) -> None:
        """Own network namespace (no interface up) and own mount namespace with a read-only tree."""
        uid, gid = os.getuid(), os.getgid()
        # The interpreter's directories stay visible even under a hidden path: they are bound back.
        keep = sorted(
            {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix, os.path.dirname(self.python))}
        )
        hide = {os.path.realpath(p) for p in self.cfg.get("hide_paths") or ()}
        if not userns:
            hide |= {a for p in keep if (a := _hidden_ancestor(p)) is not None}
        hide = {h for h in hide if os.path.isdir(h) and h != "/"}
        if userns:
            _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
        else:
            _unshare(CLONE_NEWNS | CLONE_NEWNET)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        # A bind source must be a mount of this namespace: open what to keep after unshare, before hiding.
        keep_fds = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in keep if any(_under(p, h) for h in hide)}
        for h in sorted(hide):
            _mount("tmpfs", h, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for p, fd in keep_fds.items():
            os.makedirs(p, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC)
            os.close(fd)
        _readonly_tree()

    # ------------------------------------------------------------------------------------- execute

    def execute(self, req: dict) -> dict:
        lim = req["limits"]
        fds = {"stdin": _memfd("stdin", req["stdin"]), "stdout": _memfd("stdout"), "stderr": _memfd("stderr")}
        try:
            if self.level in ("full", "userns"):
                status, wall, timed_out = self._run_in_namespaces(req["code"], fds, lim)
            else:
                status, wall, timed_out = self._run_with_hook(req["code"], fds, lim)
            if self.level == "uid":  # without a PID namespace, orphans of the program may still run
                self._kill_uid()
            out = os.pread(fds["stdout"], lim["output_bytes"] + 1, 0)
            err_size = os.fstat(fds["stderr"]).st_size
            keep = lim["stderr_bytes"]
            err = os.pread(fds["stderr"], keep, max(0, err_size - keep))
        finally:
            for fd in fds.values():
                os.close(fd)
        return _result(status, out, err, err_size > keep, wall, timed_out, lim)

    def _run_in_namespaces(self, code: str, fds: dict, lim: dict):
        """fork A -> A enters new PID/mount/IPC namespaces, forks B (their init) and exits; we adopt B."""
        go_r, go_w = os.pipe()
        st_r, st_w = os.pipe()
        t0 = time.monotonic()
        a = os.fork()
        if a == 0:
            _child_guard(lambda: self._stage_a(code, fds, lim, go_r, go_w, st_r, st_w))
        os.close(go_r)
        os.close(st_w)
        try:
            os.waitpid(a, 0)
            head = _read_exact(st_r, 8)
            if head is None:
                raise OSError(errno.ECHILD, "sandbox init did not start")
            b = struct.unpack("<q", head)[0]
            os.write(go_w, b"g")  # B is our child now (we are a subreaper): it may arm its parent-death signal
            deadline = t0 + lim["wall_s"]
            timed_out = not _wait_readable(st_r, deadline)
            if timed_out:
                os.kill(b, signal.SIGKILL)
            msg = _read_exact(st_r, 16)
            os.waitpid(b, 0)  # returns once the kernel has killed every process of the namespace
        finally:
            os.close(go_w)
            os.close(st_r)
        wall = time.monotonic() - t0
        if msg is None and not timed_out:
            raise OSError(errno.ECHILD, "the sandbox's init died before reporting (see the helper's stderr)")
        return (struct.unpack("<qd", msg) if msg else None), wall, timed_out

    def _stage_a(self, code, fds, lim, go_r, go_w, st_r, st_w) -> None:
        os.close(go_w)
        os.close(st_r)
        _unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC)
        b = os.fork()
        if b == 0:
            _child_guard(lambda: self._stage_b(code, fds, lim, go_r, st_w))
        os.write(st_w, struct.pack("<q", b))
        os._exit(0)

    def _stage_b(self, code, fds, lim, go_r, st_w) -> None:
        """PID 1 of the program's namespace: mount its /proc, /tmp, /dev/shm, start it, report its status."""
        if os.read(go_r, 1) != b"g":
            os._exit(1)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the helper dies -> this namespace dies
        _prctl(PR_SET_DUMPABLE, 0)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)  # as PID 1 with default handlers, signals from inside are dropped
        run_uid = self.uid if self.uid is not None else os.getuid()
        run_gid = self.uid if self.uid is not None else os.getgid()
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        size = f"size={lim['disk_bytes']},nr_inodes=4096"
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=0700,uid={run_uid},gid={run_gid}")
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
        _write("/tmp/main.py", code)
        c = os.fork()
        if c == 0:
            _child_guard(lambda: self._exec_program("/tmp", fds, lim, [self.python, "-s", "-S", "-P", "main.py"]))
        cpu = 0.0
        while True:
            pid, status, ru = os.wait4(-1, 0)
            if pid == c:
                cpu = ru.ru_utime + ru.ru_stime
                break
        os.write(st_w, struct.pack("<qd", status, cpu))
        os._exit(0)

    def _run_with_hook(self, code: str, fds: dict, lim: dict):
        """Levels without namespaces: one child in its own session, guarded by the audit hook."""
        workdir = tempfile.mkdtemp(prefix="or1-sandbox-")
        try:
            if self.uid is not None:
                os.chown(workdir, self.uid, self.uid)
            _write(os.path.join(workdir, "main.py"), code)
            argv = [self.python, "-s", "-S", "-P", "-c", AUDIT_BOOT, "main.py"]
            t0 = time.monotonic()
            c = os.fork()
            if c == 0:
                _child_guard(lambda: self._exec_program(workdir, fds, lim, argv))
            pidfd = os.pidfd_open(c)
            try:
                timed_out = not _wait_readable(pidfd, t0 + lim["wall_s"])
            finally:
                os.close(pidfd)
            _killpg(c)  # while c is unreaped its pid, and so its group id, cannot be reused
            _, status, ru = os.wait4(c, 0)
            return (status, ru.ru_utime + ru.ru_stime), time.monotonic() - t0, timed_out
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _exec_program(self, workdir: str, fds: dict, lim: dict, argv: list[str]) -> None:
        """The program's own process: limits, identity, descriptors, environment, then the interpreter."""
        os.setsid()
        cpu = max(1, int(-(-lim["cpu_s"] // 1)))
        for res, value in (
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_AS, (lim["memory_bytes"],) * 2),
            (resource.RLIMIT_FSIZE, (lim["output_bytes"],) * 2),
            (resource.RLIMIT_NPROC, (self.nproc_base + lim["nproc"],) * 2),
            (resource.RLIMIT_NOFILE, (256, 256)),
            (resource.RLIMIT_CORE, (0, 0)),
        ):
            resource.setrlimit(res, value)
        for target, name in enumerate(("stdin", "stdout", "stderr")):
            os.dup2(fds[name], target)
        os.closerange(3, 1 << 16)
        os.chdir(workdir)
        if self.uid is not None:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": workdir,
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        os.execve(self.python, argv, env)

    def _kill_uid(self) -> None:
        """SIGKILL every process of this slot's uid: a process of the uid runs kill(-1), which spares itself.

        kill(-1) fails with ESRCH when it found nothing to signal, the usual case, and then no scan is needed.
        """
        pid = os.fork()
        if pid == 0:
            hit = 0
            try:
                os.setresuid(self.uid, self.uid, self.uid)
                os.kill(-1, signal.SIGKILL)
                hit = 1
            except OSError:
                pass
            os._exit(hit)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 1:
            deadline = time.monotonic() + 2.0
            while self.uid in _uids_running() and time.monotonic() < deadline:
                _reap()
                time.sleep(0.001)
        _reap()


# ------------------------------------------------------------------------------------------ helpers


def _result(status, out: bytes, err: bytes, err_cut: bool, wall: float, timed_out: bool, lim: dict) -> dict:
    if status is None:
        return {
            "returncode": -signal.SIGKILL,
            "stdout": out,
            "stderr": err,
            "stderr_truncated": err_cut,
            "timed_out": timed_out,
            "killed_reason": "timeout",
            "wall_s": wall,
            "cpu_s": 0.0,
        }
    raw, cpu = status
    code = os.waitstatus_to_exitcode(raw)
    reason = None
    if timed_out:
        reason = "timeout"
    elif code == -signal.SIGXCPU or (code == -signal.SIGKILL and cpu >= lim["cpu_s"]):  # SIGKILL: hard limit
        reason = "cpu_limit"
    elif len(out) >= lim["output_bytes"]:
        reason = "output_limit"
    elif code < 0:
        reason = f"signal:{signal.Signals(-code).name}"
    return {
        "returncode": code,
        "stdout": out[: lim["output_bytes"]],
        "stderr": err,
        "stderr_truncated": err_cut,
        "timed_out": timed_out,
        "killed_reason": reason,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def _child_guard(body) -> None:
    """Run a forked child's body; whatever happens, never return into the helper's loop."""
    try:
        body()
    except BaseException as exc:  # noqa: BLE001 - report on the program's stderr, then die
        try:
            os.write(2, f"sandbox setup failed: {exc!r}\n".encode())
        finally:
            os._exit(126)
    os._exit(127)


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _wait_readable(fd: int, deadline: float) -> bool:
    """Block until `fd` is readable (or hung up) or the deadline passes; False on timeout."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if poller.poll(left * 1000):
            return True


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap() -> None:
    """Collect orphans that were re-parented to this helper (it is a child subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _uids_running() -> set[int]:
    uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                uids.add(entry.stat().st_uid)
            except FileNotFoundError:
                pass
    return uids


def _tasks_of_uid(uid: int) -> int:
    """Threads the uid already runs: RLIMIT_NPROC counts them all, so an unprivileged limit adds to this."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                total += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            pass
    return total


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _hidden_ancestor(path: str) -> str | None:
    """The topmost directory on the way to `path` that other users cannot traverse (e.g. /root, mode 0700)."""
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        d = "/" + "/".join(parts[:i])
        if not os.stat(d).st_mode & 0o001:
            return d
    return None


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


# The audit hook of the `uid` and `hook` levels, run by `-c` before the program (argv[1]) as __main__.
# Python-level only: C extensions (none are importable with -S but the standard library's) bypass it.
AUDIT_BOOT = r"""
import os, sys
def _or1_guard():
    root = os.path.realpath(os.getcwd())
    me = os.getpid()
    deny = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto",
            "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system",
            "subprocess.Popen", "os.killpg", "signal.pthread_kill", "os.setuid", "ctypes.dlopen",
            "ctypes.dlsym", "ctypes.cdata", "os.putenv", "sys.setprofile"}
    modules = {"ctypes", "_ctypes", "_posixsubprocess", "_testcapi", "_testinternalcapi",
               "_xxsubinterpreters"}
    paths = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod",
             "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
    W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    realpath, fspath, isinstance_, str_, bytes_ = os.path.realpath, os.fspath, isinstance, str, bytes
    def inside(p):
        if not isinstance_(p, (str_, bytes_, os.PathLike)):
            return True
        p = realpath(fspath(p))
        p = p.decode(errors="replace") if isinstance_(p, bytes_) else p
        return p == root or p.startswith(root + "/")
    def proc_of_other(p):
        if not isinstance_(p, (str_, bytes_, os.PathLike)):
            return False
        p = realpath(fspath(p))
        p = p.decode(errors="replace") if isinstance_(p, bytes_) else p
        return p.startswith("/proc/") and not p.startswith(f"/proc/{me}") and p.split("/")[2].isdigit()
    def hook(event, args):
        if event in deny:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "import" and args[0] in modules:
            raise PermissionError(f"sandbox: import {args[0]} is not allowed")
        if event == "os.kill" and args[0] != me:
            raise PermissionError("sandbox: signalling other processes is not allowed")
        if event == "open":
            path, mode, flags = args
            writes = (mode is not None and any(c in mode for c in "wax+")) or (flags or 0) & W
            if (writes and not inside(path)) or proc_of_other(path):
                raise PermissionError(f"sandbox: {path!r} is outside the working directory")
        if event in paths and not all(inside(a) for a in args[:2]):
            raise PermissionError(f"sandbox: {event} outside the working directory")
    sys.addaudithook(hook)
_or1_guard()
del _or1_guard
sys.argv = sys.argv[1:]
import runpy
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def main() -> None:
    config = json.loads(sys.argv[1])
    # Keep the protocol on private descriptors; 0 and 1 become /dev/null so nothing forked can use them.
    proto_in, proto_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        worker = Worker(config)
    except (OSError, ValueError) as exc:
        write_frame(proto_out, {"ready": False, "error": str(exc)})
        sys.exit(1)
    write_frame(proto_out, {"ready": True, "level": worker.level, "uid": worker.uid})
    while (req := read_frame(proto_in)) is not None:
        try:
            res = worker.execute(req)
        except OSError as exc:
            res = {"error": f"{type(exc).__name__}: {exc}"}
        write_frame(proto_out, res)
        _reap()


if __name__ == "__main__":
    main()
