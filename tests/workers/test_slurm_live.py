"""The Slurm client against the real slurmrestd of the local cluster (deploy/services/slurm_up.sh).

The cluster's address and token come from the services env file (OR1_SERVICES_ENV, else var/services.env,
else /run/slurm/rest.env from the reference script); SLURM_* variables in the environment override it.
Without it the tests skip, except in CI (CI set), where they fail. Jobs run as the token's user, so each
test works in a world-writable directory under /tmp.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from workers.slurm import (
    JobRequest,
    JobScriptSpec,
    SlurmAuthError,
    SlurmClient,
    SlurmJobNotFound,
    SlurmSubmitRejected,
    master_port,
    output_paths,
    render_job_script,
)
from workers.slurm.tokens import mint_token

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
JOB_TIMEOUT_S = 30


def _env_files() -> list[Path]:
    named = os.environ.get("OR1_SERVICES_ENV")
    return [Path(p) for p in (named, REPO / "var/services.env", "/run/slurm/rest.env") if p]


def _read_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for path in _env_files():
        if path.is_file():
            for line in path.read_text().splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    env[key] = value
            if env.get("SLURM_REST_URL"):
                break
            env = {}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("SLURM_REST_", "SLURM_JWT_"))})
    return env


def _api(env: dict[str, str]) -> str:
    return env.get("SLURM_REST_API", "v0.0.38")


def _unusable(reason: str):
    if IN_CI:
        pytest.fail(f"Slurm is required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    env = _read_env()
    if not env.get("SLURM_REST_URL") or not env.get("SLURM_REST_TOKEN"):
        _unusable(
            f"no slurmrestd env file ({', '.join(map(str, _env_files()))}); run deploy/services/slurm_up.sh"
        )
    try:
        httpx.get(env["SLURM_REST_URL"], timeout=2)
    except httpx.TransportError as exc:
        _unusable(
            f"slurmrestd at {env['SLURM_REST_URL']} is not reachable ({exc}); run deploy/services/slurm_up.sh"
        )
    return env


@pytest.fixture(scope="module")
def client(slurm_env):
    with SlurmClient.from_env(slurm_env) as c:  # the env file's token
        yield c


@pytest.fixture(scope="module")
def partition(slurm_env) -> str:
    return slurm_env.get("SLURM_PARTITION", "debug")


@pytest.fixture
def workdir():
    """A directory the job user can write; jobs run as that user, not as the test process."""
    path = Path(tempfile.mkdtemp(prefix="or1-slurm-test-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _request(workdir: Path, partition: str, body: str, **fields) -> JobRequest:
    name = fields.pop("name", f"or1-test-{uuid.uuid4().hex[:8]}")
    stdout, stderr = output_paths(str(workdir))
    return JobRequest(
        name=name,
        script=f"#!/bin/bash\n{body}\n",
        working_dir=str(workdir),
        partition=partition,
        stdout=stdout,
        stderr=stderr,
        time_limit_min=5,
        **fields,
    )


def _output(workdir: Path, job_id: int) -> str:
    return (workdir / f"slurm-{job_id}.out").read_text()


def _pids(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    return [p for p in found if p != str(os.getpid())]


def _wait_for(predicate, timeout_s: float = JOB_TIMEOUT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout_s}s")
        time.sleep(0.1)


# ---------------------------------------------------------------- reachability and auth


def test_ping(client, slurm_env):
    result = client.ping()
    assert result.ok, result
    assert result.api_version == _api(slurm_env) and result.slurm_release
    assert result.controllers[0].mode == "primary"


def test_bad_token_is_an_auth_error(slurm_env):
    with SlurmClient(
        slurm_env["SLURM_REST_URL"], _api(slurm_env), slurm_env["SLURM_REST_USER"], token="not-a-jwt"
    ) as bad:
        with pytest.raises(SlurmAuthError) as info:
            bad.ping()
    message = str(info.value)
    assert slurm_env["SLURM_REST_USER"] in message and "slurmctld config is unable to load" in message
    assert info.value.status_code == 500


def test_token_signed_with_another_key_is_an_auth_error_on_every_call(slurm_env, workdir, partition):
    """Submit and cancel see a dropped connection, a lookup "Unable to find JobId": still auth errors."""
    forged = mint_token(os.urandom(32), slurm_env["SLURM_REST_USER"], 600)
    url, user = slurm_env["SLURM_REST_URL"], slurm_env["SLURM_REST_USER"]
    with SlurmClient(url, _api(slurm_env), user, token=forged) as bad:
        with pytest.raises(SlurmAuthError, match="rejected the credentials") as info:
            bad.submit(_request(workdir, partition, "true"))
        assert "Zero Bytes were transmitted or received" in str(info.value)
        with pytest.raises(SlurmAuthError, match="Unable to find JobId=1"):
            bad.job(1)  # not None: a bad token must never read as "the job is gone"
        with pytest.raises(SlurmAuthError):
            bad.cancel(1)


def test_token_for_another_user_is_an_auth_error(slurm_env):
    with SlurmClient(
        slurm_env["SLURM_REST_URL"], _api(slurm_env), "root", token=slurm_env["SLURM_REST_TOKEN"]
    ) as bad:
        with pytest.raises(SlurmAuthError, match="'root'"):
            bad.ping()


def test_tokens_minted_from_the_cluster_key(slurm_env, workdir, partition):
    key_file = slurm_env.get("SLURM_JWT_KEY_FILE") or "/var/spool/slurmctld/jwt_hs256.key"
    if not os.access(key_file, os.R_OK):
        _unusable(f"the JWT key {key_file} is not readable by this user (it is root's)")
    user = slurm_env["SLURM_REST_USER"]
    with SlurmClient(
        slurm_env["SLURM_REST_URL"], _api(slurm_env), user, jwt_key=key_file, token_lifespan_s=120
    ) as minted:
        assert minted.ping().ok
        job_id = minted.submit(_request(workdir, partition, "id -un"))
        info = minted.wait(job_id, JOB_TIMEOUT_S)
    assert info.state == "COMPLETED"
    assert info.raw["user_name"] == user and _output(workdir, job_id).strip() == user


# ---------------------------------------------------------------- jobs


def test_job_completes_with_exit_zero_and_its_environment(client, workdir, partition):
    value = 'it\'s "quoted" $HOME'
    job_id = client.submit(
        _request(workdir, partition, 'echo "MSG=$MSG"; exit 0', environment={"MSG": value})
    )
    info = client.wait(job_id, JOB_TIMEOUT_S)
    assert info.job_id == job_id and info.state == "COMPLETED"
    assert info.exit.return_code == 0 and info.exit.ok
    assert info.node_list and info.start_time and info.end_time and info.start_time <= info.end_time
    assert _output(workdir, job_id) == f"MSG={value}\n"


def test_exit_3_is_failed_with_return_code_3(client, workdir, partition):
    job_id = client.submit(_request(workdir, partition, "exit 3"))
    info = client.wait(job_id, JOB_TIMEOUT_S)
    assert info.state == "FAILED" and info.reason == "NonZeroExitCode"
    assert info.exit.return_code == 3 and info.exit.signal is None
    if client.adapter.version == "v0.0.38":
        assert info.raw["exit_code"] == 768  # the raw wait status the adapter decoded


def test_cancel_ends_the_job_and_its_processes(client, workdir, partition):
    marker = f"or1-marker-{uuid.uuid4().hex}"
    job_id = client.submit(_request(workdir, partition, f"bash -c 'sleep 60; true' {marker}"))
    client.wait(job_id, JOB_TIMEOUT_S, until=lambda i: i.state == "RUNNING")
    _wait_for(lambda: _pids(marker), what="the job's process")
    client.cancel(job_id, "SIGKILL")  # Slurm's full cancel: SIGTERM, KillWait, SIGKILL
    info = client.wait(job_id, JOB_TIMEOUT_S)
    assert info.state == "CANCELLED"
    _wait_for(lambda: not _pids(marker), timeout_s=5, what="the job's processes gone")


def _trainer_stand_in(marker: str, on_term: str) -> list[str]:
    """A Python 'trainer' that writes `started`, then on SIGTERM writes `checkpoint` and runs `on_term`."""
    code = (
        f"# {marker}\n"
        "import pathlib, signal, sys, time\n"
        "def stop(signum, frame):\n"
        "    pathlib.Path('checkpoint').write_text(repr(sys.argv[1:]))\n"
        f"    {on_term}\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "pathlib.Path('started').write_text('yes')\n"
        "for _ in range(600):\n"
        "    time.sleep(0.1)\n"
    )
    return ["python3", "-c", code]


def _run_dir(workdir: Path) -> Path:
    run_dir = workdir / "run 'a' \"b\" $(touch PWNED) 100%x"
    run_dir.mkdir()
    run_dir.chmod(0o777)
    return run_dir


def test_sigterm_reaches_the_trainer_which_checkpoints(client, workdir, partition):
    """cancel_then_kill: the rendered script execs the trainer, so Slurm's SIGTERM reaches it."""
    run_dir = _run_dir(workdir)
    marker = f"or1-marker-{uuid.uuid4().hex}"
    args = ["run", "spec file.yaml", "--out", str(run_dir), "--resume"]
    spec = JobScriptSpec(str(run_dir), args, trainer_command=_trainer_stand_in(marker, "sys.exit(0)"))
    stdout, stderr = output_paths(str(run_dir))
    request = JobRequest("run 'a'", render_job_script(spec), str(run_dir), partition=partition, stdout=stdout)
    job_id = client.submit(request)
    _wait_for(lambda: (run_dir / "started").exists(), what="trainer start")
    info = client.cancel_then_kill(job_id, grace_s=15)
    assert info.terminal and info.state == "COMPLETED" and info.exit.ok  # it stopped by itself, exit 0
    assert (run_dir / "checkpoint").read_text() == repr(args)  # the arguments arrived verbatim
    assert not _pids(marker)
    assert (run_dir / f"slurm-{job_id}.out").exists()  # %x stayed literal in the run directory's name
    assert not list(workdir.rglob("PWNED"))


def test_trainer_ignoring_sigterm_is_killed_after_the_grace(client, workdir, partition):
    run_dir = _run_dir(workdir)
    marker = f"or1-marker-{uuid.uuid4().hex}"
    spec = JobScriptSpec(str(run_dir), ["run"], trainer_command=_trainer_stand_in(marker, "pass"))
    request = JobRequest(
        "stubborn", render_job_script(spec), str(run_dir), partition=partition, stdout="/dev/null"
    )
    job_id = client.submit(request)
    _wait_for(lambda: (run_dir / "started").exists(), what="trainer start")
    started = time.monotonic()
    client.cancel_then_kill(job_id, grace_s=1, poll_s=0.2)
    assert time.monotonic() - started >= 1
    assert (run_dir / "checkpoint").exists()  # it did get the SIGTERM
    info = client.wait(job_id, JOB_TIMEOUT_S)
    assert info.state == "CANCELLED"
    _wait_for(lambda: not _pids(marker), timeout_s=10, what="the stubborn trainer gone")


def test_distributed_script_starts_the_launcher_through_srun(client, workdir, partition):
    """The multi-process layout on the real cluster: one node, two (fake) GPUs, a stand-in torchrun."""
    run_dir = _run_dir(workdir)
    torchrun = workdir / "fake torchrun"
    torchrun.write_text(
        "#!/bin/bash\n"
        'printf "%s\\n" "$@" > launcher.args\n'
        'echo "$MASTER_ADDR $MASTER_PORT $SLURM_STEP_ID $SLURM_NTASKS $CUDA_VISIBLE_DEVICES" > launcher.env\n'
    )
    torchrun.chmod(0o755)
    args = ["run", "spec.yaml", "--out", str(run_dir)]
    spec = JobScriptSpec(str(run_dir), args, gpus_per_node=2, torchrun=str(torchrun))
    request = JobRequest(
        "dist",
        render_job_script(spec),
        str(run_dir),
        partition=partition,
        gpus_per_node=2,
        stdout="/dev/null",
    )
    job_id = client.submit(request)
    info = client.wait(job_id, JOB_TIMEOUT_S)
    assert info.state == "COMPLETED", info
    host = info.node_list
    assert (run_dir / "launcher.args").read_text().splitlines() == [
        "--nnodes", "1",
        "--nproc-per-node", "2",
        "--rdzv-id", str(job_id),
        "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"{host}:{master_port(job_id)}",
        "-m", "or1_train.cli",
        *args,
    ]  # fmt: skip
    master_addr, port, step_id, ntasks, gpus = (run_dir / "launcher.env").read_text().split()
    assert (master_addr, int(port), step_id, ntasks) == (host, master_port(job_id), "0", "1")
    assert gpus == "0,1"


def test_gpu_job_sees_cuda_visible_devices(client, workdir, partition):
    job_id = client.submit(_request(workdir, partition, 'echo "CVD=$CUDA_VISIBLE_DEVICES"', gpus_per_node=1))
    info = client.wait(job_id, JOB_TIMEOUT_S)
    assert info.state == "COMPLETED"
    assert _output(workdir, job_id) == "CVD=0\n"


def test_unknown_partition_is_rejected_with_slurms_reason(client, workdir):
    with pytest.raises(SlurmSubmitRejected, match="Invalid partition name specified") as info:
        client.submit(_request(workdir, "no-such-partition", "true"))
    assert 2000 in info.value.error_numbers


def test_more_gpus_than_the_node_has_is_rejected(client, workdir, partition):
    with pytest.raises(SlurmSubmitRejected, match="Requested node configuration is not available"):
        client.submit(_request(workdir, partition, "true", gpus_per_node=3))


def test_more_nodes_than_the_partition_has_is_queued_with_a_remark(client, workdir, partition, caplog):
    """Slurm (like sbatch) queues such a job with a remark; it stays pending until cancelled."""
    with caplog.at_level(logging.WARNING, logger="workers.slurm.client"):
        job_id = client.submit(_request(workdir, partition, "true", nodes=2))
    assert "Requested partition configuration not available now" in caplog.text
    info = client.job(job_id)
    assert info.state == "PENDING" and info.reason in ("PartitionNodeLimit", "PartitionConfig")
    info = client.cancel_then_kill(job_id, grace_s=30)  # pending: no SIGTERM, cancelled at once
    assert client.wait(job_id, JOB_TIMEOUT_S).state == "CANCELLED"


def test_unknown_job_is_none(client):
    assert client.job(987_654_321) is None
    with pytest.raises(SlurmJobNotFound, match="Invalid job id specified"):
        client.cancel(987_654_321)
