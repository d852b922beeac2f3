"""The local Slurm cluster as the platform tests use it (deploy/services/slurm_up.sh): its address and token,
a shared filesystem the job user can use, inputs it can read, a Celery queue of the test's own for the Slurm
tasks, ``deliver`` to run what was sent there, and ``make_cluster`` to register the cluster for the team.

The jobs run as the cluster's job user (``slurmci``), not as this process, so:

- the job user must be able to run Python with the project's packages: the venv's interpreter when the job user
  can reach it, else the system Python of the same version with the venv's site-packages on PYTHONPATH (the
  cluster's job template below; on this machine the venv's interpreter lives under /root);
- the runs directory is one the job user can write: a directory in /tmp owned by root and the job user's
  group, setgid, as an operator would set up the cluster's shared runs directory (docs/slurm.md);
- model and data files are built here, once, outside pytest's private tmp dirs, readable by all.

Without the cluster (no env file, slurmrestd not answering) the tests skip; in CI they fail. Imported by the test
modules (``from tests.workers.slurm_cast import *``) so its fixtures register there.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import sysconfig
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

__all__ = ["inputs", "make_cluster", "shared_dir", "slurm_env", "slurm_queue"]

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
GRACE_S = 20


def _unusable(reason: str):
    if IN_CI:
        pytest.fail(f"the Slurm launcher tests need the local cluster in CI: {reason}")
    pytest.skip(reason)


def _slurm_env() -> dict[str, str]:
    """SLURM_* from the services env file (OR1_SERVICES_ENV, var/services.env, /run/slurm/rest.env)."""
    env: dict[str, str] = {}
    named = os.environ.get("OR1_SERVICES_ENV")
    for path in [Path(p) for p in (named, REPO / "var/services.env", "/run/slurm/rest.env") if p]:
        if path.is_file():
            pairs = (line.strip().partition("=") for line in path.read_text().splitlines())
            env = {k: v for k, sep, v in pairs if sep and k.startswith("SLURM_")}
            if env.get("SLURM_REST_URL"):
                break
    env.update({k: v for k, v in os.environ.items() if k.startswith(("SLURM_REST_", "SLURM_PARTITION"))})
    return env


def _job_python() -> str:
    """An interpreter the job user can execute: this venv's, or the system one of the same version."""
    real = Path(os.path.realpath(sys.executable))
    if all(os.stat(p).st_mode & 0o001 for p in [real, *real.parents]):
        return sys.executable
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if system.exists():
        return str(system)
    _unusable(f"the job user cannot execute {real} and there is no {system}")


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    env = _slurm_env()
    if not env.get("SLURM_REST_URL") or not env.get("SLURM_REST_TOKEN"):
        _unusable("no slurmrestd env file: run deploy/services/slurm_up.sh (make services)")
    try:
        httpx.get(env["SLURM_REST_URL"], timeout=2)
    except httpx.TransportError as exc:
        _unusable(f"slurmrestd at {env['SLURM_REST_URL']} does not answer ({exc})")
    if os.geteuid() != 0:
        _unusable("the runs directory is given to the job user's group, which needs root here")
    return env


@pytest.fixture(scope="module")
def shared_dir(slurm_env):
    """Stands in for the cluster's shared filesystem: inputs readable by all, runs writable by the job user."""
    job_user = pwd.getpwnam(slurm_env.get("SLURM_REST_USER", "slurmci"))
    root = Path(tempfile.mkdtemp(prefix="or1-slurm-platform-", dir="/tmp"))
    root.chmod(0o755)
    runs = root / "runs"
    runs.mkdir()
    os.chown(runs, 0, job_user.pw_gid)
    runs.chmod(0o2770)
    yield {"root": root, "runs": runs, "uid": job_user.pw_uid}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def inputs(shared_dir) -> dict[str, Path]:
    from or1_train.data.synthetic import corpus_for_tokenizer, write_dataset
    from or1_train.model import ModelInitConfig, init_model

    root = shared_dir["root"] / "inputs"
    model = init_model(
        root / "model", ModelInitConfig(hidden_size=64, num_layers=2, num_heads=2), corpus_for_tokenizer(0, 2000)
    )
    data = write_dataset(root / "easy.jsonl", 64, (1, 2), 1)
    evalset = write_dataset(root / "eval.jsonl", 8, (1, 2), 5)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {"model": Path(model), "data": Path(data), "eval": Path(evalset)}


@pytest.fixture
def slurm_queue(settings):
    """A Celery queue of this test's own for the Slurm tasks; emptied afterwards."""
    queue = f"test.slurm.{uuid.uuid4().hex[:10]}"
    settings.OR1_SLURM_QUEUE = queue
    settings.OR1_CANCEL_GRACE_S = GRACE_S
    yield queue
    from or1platform.celery import app

    with app.connection_for_write() as conn, conn.SimpleQueue(queue) as q:
        q.clear()
        q.queue.delete()  # and its bindings, so the broker keeps nothing of the test


def deliver(queue: str, wait_s: float = 5.0) -> list:
    """Run the tasks sent to ``queue`` in this process, as a worker consuming it would; their results."""
    import workers.tasks  # noqa: F401 - registers the tasks, as a worker's autodiscovery does
    from or1platform.celery import app

    results = []
    with app.connection_for_read() as conn, conn.SimpleQueue(queue) as q:
        timeout = wait_s
        while True:
            try:
                message = q.get(block=True, timeout=timeout)
            except q.Empty:
                return results
            args, kwargs, _ = message.payload
            task = app.tasks[message.headers["task"]]
            message.ack()
            results.append(task.apply(args=args, kwargs=kwargs).get())
            timeout = 0.5  # what the task just did may have sent more (a follow-up check)


@pytest.fixture
def make_cluster(slurm_env, shared_dir, team, live_server):
    """``make_cluster(name, **fields)``: the local cluster, registered for the team as an operator would."""
    from experiments.models import SlurmCluster

    purelib = sysconfig.get_paths()["purelib"]

    def make(name: str = "local", token: str | None = None, **fields) -> SlurmCluster:
        values = {
            "rest_url": slurm_env["SLURM_REST_URL"],
            "api_version": slurm_env.get("SLURM_REST_API", "v0.0.38"),
            "user": slurm_env.get("SLURM_REST_USER", "slurmci"),
            "partition": slurm_env.get("SLURM_PARTITION", "debug"),
            "runs_dir": str(shared_dir["runs"]),
            "job_template": f"export PYTHONPATH={purelib}:{REPO}",
            "trainer_command": f"{_job_python()} -m or1_train",
            "ingest_url": live_server.url,
        }
        cluster = SlurmCluster(team=team, name=name, **(values | fields))
        cluster.set_token(token or slurm_env["SLURM_REST_TOKEN"])
        cluster.full_clean()
        cluster.save()
        return cluster

    return make
