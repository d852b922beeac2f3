"""The sandbox's contract for ordinary programs, at the strongest isolation level this host grants."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import pytest

from or1_train.rewards import sandbox
from or1_train.rewards.sandbox import SandboxLimits, SandboxPool, run_sandboxed

LIMITS = SandboxLimits(wall_s=10.0, memory_mb=512)


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(2)
    yield p
    p.close()


def test_stdin_stdout_stderr_and_exit_status(pool):
    res = pool.run(
        "import sys\nprint(input()[::-1])\nprint('oops', file=sys.stderr)\nsys.exit(3)", stdin="hello\n", limits=LIMITS
    )
    assert (res.returncode, res.stdout, res.stderr) == (3, "olleh\n", "oops\n")
    assert not res.timed_out and res.killed_reason is None and not res.ok
    assert 0 < res.cpu_s <= res.wall_s < LIMITS.wall_s


def test_uncaught_exception_and_unicode(pool):
    res = pool.run("print('héllo ✓')\nraise ValueError('boom')", limits=LIMITS)
    assert res.returncode == 1 and res.stdout == "héllo ✓\n"
    assert res.stderr.strip().endswith("ValueError: boom")


def test_isolated_interpreter_and_scrubbed_environment(pool):
    code = """
import os, sys
print(sys.flags.no_site, sys.flags.no_user_site, sys.flags.safe_path)
print(sorted(os.environ))
print(os.environ["HOME"] == os.getcwd(), os.environ["PYTHONHASHSEED"])
print(any("site-packages" in p for p in sys.path))
"""
    res = pool.run(code, limits=LIMITS)
    lines = res.stdout.splitlines()
    assert lines[0] == "1 1 True"
    assert lines[1] == str(sorted(["HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED"]))
    assert lines[2] == "True 0" and lines[3] == "False"


def test_hash_seed_makes_set_order_reproducible(pool):
    code = "print(list({'apple', 'pear', 'fig', 'kiwi', 'plum', 'date', 'lime'}))"
    assert len({pool.run(code, limits=LIMITS).stdout for _ in range(3)}) == 1


def test_stderr_keeps_only_its_tail_and_stdout_is_capped(pool):
    limits = SandboxLimits(wall_s=10.0, memory_mb=512, output_mb=1, stderr_bytes=100)
    res = pool.run("import sys\nsys.stderr.write('x' * 5000 + 'END')", limits=limits)
    assert res.stderr.startswith("[...]") and res.stderr.endswith("END") and len(res.stderr) == 105
    res = pool.run("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)", limits=limits)
    assert res.killed_reason == "output_limit" and res.returncode != 0
    assert len(res.stdout) == 1 << 20


def test_cpu_limit_applies_when_the_wall_clock_is_generous(pool):
    res = pool.run("while True:\n    pass", limits=SandboxLimits(wall_s=30, cpu_s=1, memory_mb=512))
    assert res.killed_reason == "cpu_limit" and not res.timed_out and res.returncode < 0
    assert 0.9 <= res.cpu_s < 3


def test_concurrency_is_bounded_by_the_pool(pool):
    """Six programs that each hold a slot for 0.5 s take three rounds on two slots, whatever the threads."""
    code = "import time, os\ntime.sleep(0.5)\nprint(os.getpid())"
    t = time.monotonic()
    with cf.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(lambda _: pool.run(code, limits=LIMITS), range(6)))
    elapsed = time.monotonic() - t
    assert all(r.ok for r in results)
    assert elapsed >= 1.5


def test_the_pool_reports_its_isolation_level(pool):
    assert pool.level in sandbox.LEVELS
    if os.geteuid() == 0:  # "uid" where a container refuses namespaces
        assert pool.level in ("full", "uid")
        assert len(set(pool.sandbox_uids)) == pool.max_workers  # one uid per slot
        assert all(u >= sandbox.sandbox_worker.UID_BASE for u in pool.sandbox_uids)


def test_run_sandboxed_uses_a_process_wide_pool():
    res = run_sandboxed("print(sum(range(10)))")
    assert res.stdout == "45\n"
    assert sandbox.default_pool() is sandbox.default_pool()
    assert sandbox.default_pool().max_workers == sandbox.default_workers()


def test_a_dead_helper_is_replaced():
    with SandboxPool(1) as p:
        os.kill(p.helper_pids[0], 9)
        with pytest.raises(sandbox.SandboxError):
            p.run("print(1)", limits=LIMITS)
        assert p.run("print(1)", limits=LIMITS).stdout == "1\n"


def test_limits_are_validated():
    with pytest.raises(ValueError, match="wall_s"):
        SandboxLimits(wall_s=0)
    with pytest.raises(ValueError, match="cpu_s"):
        SandboxLimits(cpu_s=-1)
    with pytest.raises(ValueError, match="isolation"):
        SandboxPool(1, isolation="chroot")
