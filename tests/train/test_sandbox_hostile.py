"""Hostile programs against every isolation level this host can run: each must end contained, the test
process and the pool's helpers alive, and no process of the program left behind.

How each level is reached: as root, "full" directly; "userns" and "hook" with the helpers running as
`nobody` (they then see a non-root trainer, as in production); "uid" as root without namespaces. Levels
other than "full" run an interpreter `nobody` may execute, since the trainer's own may sit under a
directory others cannot enter (pyenv under /root here). As a non-root user, "userns" and "hook" run as
that user and the root-only levels are skipped.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

from or1_train.rewards.code import CodeVerifier
from or1_train.rewards.sandbox import SandboxError, SandboxLimits, SandboxPool

NOBODY = 65534
ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]
# Programs that should end by themselves get a generous wall clock (the host may be loaded); those that
# should be killed get a short one.
LIMITS = SandboxLimits(wall_s=10.0, memory_mb=512, nproc=16)
SHORT = SandboxLimits(wall_s=1.0, memory_mb=512, nproc=16)


def python_for_others() -> str | None:
    """An interpreter every user may run: the trainer's own if others may reach it, else a system one."""
    names = (f"python3.{sys.version_info[1]}", "python3")
    system = [f"{d}/{n}" for d in ("/usr/local/bin", "/usr/bin") for n in names]
    for candidate in (sys.executable, *system):
        path = os.path.realpath(candidate)
        if os.access(path, os.X_OK) and _open_to_others(path):
            return path
    return None


def _open_to_others(path: str) -> bool:
    parts = path.strip("/").split("/")
    return all(os.stat("/" + "/".join(parts[:i])).st_mode & 0o001 for i in range(1, len(parts)))


def pool_kwargs(level: str) -> dict:
    """SandboxPool arguments that make it run at `level` here, or pytest.skip when it cannot."""
    if level == "full":
        if not ROOT:
            pytest.skip("level 'full' needs root")
        return {"isolation": "full"}
    other = python_for_others()
    if other is None:
        pytest.skip("no interpreter that other users may run")
    if level == "uid":
        if not ROOT:
            pytest.skip("level 'uid' needs root")
        return {"isolation": "uid", "python": other}
    return {"isolation": level, **({"run_as": NOBODY, "python": other} if ROOT else {})}


def start_pool(level: str, workers: int = 2) -> SandboxPool:
    try:
        return SandboxPool(workers, **pool_kwargs(level))
    except SandboxError as e:
        pytest.skip(f"isolation level {level!r} is not available here: {e}")


@pytest.fixture(scope="module", params=["full", "userns", "uid", "hook"])
def pool(request):
    p = start_pool(request.param)
    yield p
    p.close()


def leftovers(pool: SandboxPool, marker: str) -> list[str]:
    """Live or zombie processes a program left: any of the programs' own uid (when that uid is not this
    test's, so it can be told apart), minus the pool's helpers, or any whose command line holds `marker`."""
    uids = set(pool.sandbox_uids) or {pool.run_as if pool.run_as is not None else os.getuid()}
    uids.discard(os.getuid())
    skip = set(pool.helper_pids) | {os.getpid()}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            uid = entry.stat().st_uid
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode("ascii", "replace")
        except OSError:
            continue
        if uid in uids or marker in cmd:
            found.append(f"pid {entry.name} uid {uid}: {cmd[:120]}")
    return found


def assert_contained(pool: SandboxPool, marker: str) -> None:
    deadline = time.monotonic() + 2.0  # a killed process can take a moment to be reaped by its parent
    while (left := leftovers(pool, marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, left
    for pid in pool.helper_pids:
        os.kill(pid, 0)  # the helpers are alive
    assert pool.run("print(6 * 7)", limits=LIMITS).stdout == "42\n"  # and still serve


@pytest.fixture
def marker() -> str:
    return f"or1probe{uuid.uuid4().hex[:12]}"


def test_fork_bomb_is_capped_and_swept(pool, marker):
    code = f"""
import os, time
MARK = "{marker}"
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""
    t = time.monotonic()
    res = pool.run(code, limits=SHORT)
    assert res.timed_out and res.killed_reason == "timeout"
    assert time.monotonic() - t < SHORT.wall_s + 5
    assert_contained(pool, marker)


def test_memory_hog_gets_memory_error(pool, marker):
    res = pool.run("x = bytearray(10 * 1024**3)\nprint('allocated')", limits=LIMITS)
    assert res.returncode == 1 and "MemoryError" in res.stderr and "allocated" not in res.stdout
    grow = "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024**2))"
    res = pool.run(grow, limits=SandboxLimits(wall_s=10.0, memory_mb=256))
    assert res.returncode != 0 and "MemoryError" in res.stderr
    assert_contained(pool, marker)


def test_infinite_loop_is_killed_at_the_wall_limit(pool, marker):
    res = pool.run("while True:\n    pass", limits=SHORT)
    assert res.timed_out and res.killed_reason == "timeout" and res.returncode < 0
    assert SHORT.wall_s <= res.wall_s < SHORT.wall_s + 2.0
    assert_contained(pool, marker)


def test_no_network_to_a_listener_on_loopback(pool, marker):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    code = f"""
import socket
to = ("127.0.0.1", {port})
for attempt in (lambda: socket.create_connection(to, timeout=1),
                lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"{marker}", to)):
    try:
        attempt()
        print("CONNECTED")
    except OSError as e:
        print("blocked:", type(e).__name__)
"""
    res = pool.run(code, limits=LIMITS)
    with pytest.raises(TimeoutError):
        server.accept()
    server.close()
    assert "CONNECTED" not in res.stdout and res.stdout.count("blocked") == 2, res
    assert_contained(pool, marker)


def test_writes_outside_the_working_directory_do_not_land(pool, marker):
    targets = [Path(d) / marker for d in ("/tmp", "/var/tmp", "/dev/shm", REPO)]
    code = f"""
import os
open("inside.txt", "w").write("ok")  # its own working directory is writable
print("inside", open("inside.txt").read())
for path in {[str(t) for t in targets]!r}:
    try:
        with open(path, "w") as f:
            f.write("escaped")
    except OSError as e:
        print("blocked", type(e).__name__)
"""
    try:
        res = pool.run(code, limits=LIMITS)
        assert "inside ok" in res.stdout, res
        for t in targets:
            assert not t.exists(), f"{t} was written from the sandbox"
    finally:
        for t in targets:
            t.unlink(missing_ok=True)
    assert_contained(pool, marker)


def test_working_directory_is_fresh_for_each_run(pool, marker):
    pool.run(f"open('{marker}', 'w').write('x')", limits=LIMITS)
    res = pool.run(f"import os\nprint(os.path.exists('{marker}'), sorted(os.listdir('.')))", limits=LIMITS)
    assert res.stdout.startswith("False"), res


def test_secrets_of_the_trainer_stay_out(pool, marker, monkeypatch, tmp_path):
    """Environment: a secret set in the trainer before the pool starts. Files: a root-only file (not for
    "hook", which runs as the trainer's own uid when the trainer is not root: documented)."""
    monkeypatch.setenv("OR1_SECRET", marker)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(marker)
    secret_file.chmod(0o600)
    fresh = SandboxPool(1, **pool_kwargs(pool.level))
    code = f"""
import os
print(sorted(os.environ.items()))
for path in ["/proc/self/environ", "/proc/1/environ", "/proc/{os.getpid()}/environ",
             "/proc/{os.getppid()}/environ", "{secret_file}"]:
    try:
        print(path, open(path, "rb").read())
    except OSError as e:
        print(path, "blocked", type(e).__name__)
"""
    try:
        res = fresh.run(code, limits=LIMITS)
    finally:
        fresh.close()
    assert res.returncode == 0, res
    assert "OR1_SECRET" not in res.stdout
    if pool.level != "hook" or ROOT:
        assert marker not in res.stdout, res.stdout


def test_killing_the_parent_or_the_trainer_fails(pool, marker):
    code = f"""
import os, signal
for pid in (os.getppid(), {os.getpid()}, -1, 1):
    try:
        os.kill(pid, signal.SIGKILL)
        print("sent", pid)
    except OSError as e:
        print("refused", pid, type(e).__name__)
"""
    res = pool.run(code, limits=LIMITS)
    os.kill(os.getpid(), 0)  # still here (a dead test process would not get this far anyway)
    assert_contained(pool, marker)
    assert "refused" in res.stdout or res.returncode != 0


def test_daemon_that_double_forks_and_setsids_is_gone_afterwards(pool, marker):
    code = f"""
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "60.{int(marker[-10:], 16)}"])
    os._exit(0)
print("parent done")
"""
    res = pool.run(code, limits=LIMITS)
    assert not res.timed_out  # the daemon does not hold the run open
    # The audit-hook levels refuse the fork itself.
    assert res.stdout == "parent done\n" or (pool.level in ("uid", "hook") and "PermissionError" in res.stderr)
    assert_contained(pool, f"60.{int(marker[-10:], 16)}")


def test_hostile_code_scores_zero_and_leaves_nothing(pool, marker):
    verifier = CodeVerifier(timeout_s=0.5, memory_mb=512, pool=pool)
    fence = "```"
    bodies = [
        "x = bytearray(10 * 1024**3)",
        "import os\nos.kill(os.getppid(), 9)",
        "import os\nos.system('kill -9 -1; echo 1')",
    ]
    gt = '{"inputs": ["1\\n"], "outputs": ["1\\n"]}'
    scores = verifier.score([f"</think>{fence}python\n{b}\n{fence}" for b in bodies], [gt] * len(bodies))
    verifier.close()
    assert [s.reward for s in scores] == [0.0] * len(bodies)
    assert_contained(pool, marker)
