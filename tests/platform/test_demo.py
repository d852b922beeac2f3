"""``manage.py demo`` end to end on the embedded defaults: it serves the login page, its worker answers a
ping over the filesystem broker, and SIGTERM stops every child it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from experiments.management.commands.demo import wait_for_port

REPO = Path(__file__).resolve().parents[2]
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "OR1_ENV",
    "DJANGO_DEBUG",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (PID 1 here may reap orphans late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_demo_serves_runs_a_worker_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env |= {"OR1_DATA_DIR": str(tmp_path / "data"), "DJANGO_SETTINGS_MODULE": "or1platform.settings"}
    log = (tmp_path / "demo.log").open("w+")
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--no-launch", "--addr", f"127.0.0.1:{port}", "--stop-timeout", "15"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    try:
        assert wait_for_port("127.0.0.1", port, 90, lambda: demo.poll() is None), Path(log.name).read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=10) as response:
            assert response.status == 200 and b'name="password"' in response.read()

        # A broadcast sent before the worker consumes is lost, not queued: ask again until it answers.
        ping_command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "or1platform",
            "inspect",
            "ping",
            "--timeout",
            "3",
        ]
        ping_command += ["--destination", f"demo@{socket.gethostname()}"]
        deadline, answers = time.monotonic() + 90, ""
        while "pong" not in answers and time.monotonic() < deadline:
            ping = subprocess.run(ping_command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
            answers = ping.stdout + ping.stderr
        assert "pong" in answers, answers + Path(log.name).read_text()

        deadline = time.monotonic() + 30
        while "log in as demo / demo" not in Path(log.name).read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        output = Path(log.name).read_text()
        assert "log in as demo / demo" in output and f"running at http://127.0.0.1:{port}/" in output
        assert "created experiment 'cpu-demo'" in output
        children = {name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", output)}
        assert set(children) == {"web", "worker", "beat"}

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0, Path(log.name).read_text()
        output = Path(log.name).read_text()
        assert all(f"stopped {name}" in output for name in children)
        assert not [name for name, pid in children.items() if pid_alive(pid)]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        log.close()


def test_demo_refuses_a_bad_address():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--addr must be host:port"):
        call_command("demo", "--addr", "8000")
