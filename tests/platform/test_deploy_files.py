"""The deployment files, checked as text: the compose file, the two Dockerfiles, the entrypoint, nginx and
gunicorn configuration, and the configuration reference in docs/operations.md.

``docker build`` and ``docker compose up`` cannot run on the project machines (the Docker client is
installed, the engine is not). ``docker compose config`` is used where the compose plugin exists; the YAML
checks below run everywhere: services, health checks, volumes, start order and the wiring of queues and
ingestion that a typo would silently break. The Dockerfiles must install the same pinned dependency set that
``make test`` runs, through the same installer, from pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
PLATFORM_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("db", "redis", "web", "worker", "beat", "proxy")
COMPOSE_ENV = {"OR1_HOSTNAME": "lab.example.org", "DJANGO_SECRET_KEY": "x" * 50, "POSTGRES_PASSWORD": "pw123"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def default_of(value: str) -> str:
    """``${NAME:-default}`` -> default; plain values as they are."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-([^}]*)\}", value)
    return match.group(1) if match else value


def arg_defaults(dockerfile: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(.*)$", dockerfile.read_text(), flags=re.M))


def make_defaults() -> dict[str, str]:
    return dict(re.findall(r"^(\w+) \?= (.*)$", (REPO / "Makefile").read_text(), flags=re.M))


def pins_module():
    spec = importlib.util.spec_from_file_location("pins_satisfied", DEPLOY / "pins_satisfied.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ compose


def test_docker_compose_config_where_the_plugin_exists():
    docker = shutil.which("docker")
    has_plugin = (
        docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if not has_plugin:
        pytest.skip(
            "no `docker compose` plugin on this machine; the parsed-YAML checks in this file cover it"
        )
    env = os.environ | COMPOSE_ENV
    out = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    bare = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV}
    refused = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        env=bare,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "deploy/.env" in refused.stderr


def test_compose_services_health_checks_and_start_order(compose):
    services = compose["services"]
    assert set(LONG_RUNNING + ("migrate",)) <= set(services)
    for name in LONG_RUNNING:
        test = services[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name} has no health check"
        assert services[name].get("restart") == "unless-stopped", name
    assert services["migrate"]["command"] == ["migrate"] and services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }, name
    assert services["proxy"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    # One image for web, worker, beat and migrate, built from the platform Dockerfile with its tag recorded.
    images = {services[name]["image"] for name in PLATFORM_SERVICES}
    assert images == {"${OR1_IMAGE:-or1lab:latest}"}
    for name in PLATFORM_SERVICES:
        build = services[name]["build"]
        assert (
            build["dockerfile"] == "deploy/Dockerfile"
            and (COMPOSE_FILE.parent / build["context"]).resolve() == REPO
        )
        assert build["args"]["OR1_IMAGE_TAG"] == services[name]["image"]
    assert services["gpu-worker"]["build"]["dockerfile"] == "deploy/trainer.Dockerfile"
    assert services["gpu-worker"]["profiles"] == ["gpu"]  # never started by a plain `up`
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}, "only nginx may be reachable from outside"


def test_compose_volumes_for_the_database_and_the_run_directories(compose):
    services, declared = compose["services"], set(compose["volumes"])
    mounts = {name: [str(v) for v in service.get("volumes", [])] for name, service in services.items()}
    assert "pgdata:/var/lib/postgresql/data" in mounts["db"]
    assert "redisdata:/data" in mounts["redis"]
    runs = "${OR1_RUNS_DIR_HOST:-runs}:/data/runs"
    assert runs in mounts["worker"] and runs in mounts["gpu-worker"]
    assert runs + ":ro" in mounts["web"]  # the web tier only reads logs
    for name, volumes in mounts.items():
        for volume in volumes:
            source = (
                default_of(volume.split(":/", 1)[0]) if volume.startswith("${") else volume.split(":", 1)[0]
            )
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts the undeclared volume {source}"
    assert {"pgdata", "redisdata", "runs", "or1data"} <= declared
    # The run directories live where the images' settings look for them.
    for dockerfile in ("Dockerfile", "trainer.Dockerfile"):
        assert "OR1_RUNS_DIR=/data/runs" in (DEPLOY / dockerfile).read_text()


def test_compose_queue_wiring(compose):
    """New local runs must reach a worker, and the reconciler's fan-out must reach one, whatever the
    containers' generated host names are: the settings derive each queue from the host name unless told
    otherwise."""
    services = compose["services"]
    common = compose["x-platform-env"]
    worker, beat = env_of(services["worker"]), env_of(services["beat"])
    assert worker["OR1_WORKER_QUEUE"] == f"host.{services['worker']['hostname']}"
    assert default_of(common["OR1_LOCAL_LAUNCH_QUEUE"]) == worker["OR1_WORKER_QUEUE"]
    gpu = services["gpu-worker"]
    assert env_of(gpu)["OR1_WORKER_QUEUE"] == f"host.{gpu['hostname']}"
    # beat sends `reconcile` to its OR1_WORKER_QUEUE; every worker consumes "default" (the settings' default).
    assert beat["OR1_WORKER_QUEUE"] == "default" and "OR1_WORKER_QUEUES" not in worker
    from django.conf import settings

    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"
    assert settings.CELERY_BEAT_SCHEDULE["reconcile-runs"]["options"]["queue"] == settings.OR1_WORKER_QUEUE


def test_compose_secrets_are_required_and_production_is_on(compose):
    common = compose["x-platform-env"]
    assert common["OR1_ENV"] == "production"
    assert common["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
    assert (
        common["DATABASE_URL"]
        == "postgres://or1:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in deploy/.env}@db:5432/or1"
    )
    assert common["OR1_TRUST_X_FORWARDED_PROTO"] == "1"  # nginx sets X-Forwarded-Proto; web is not published


def test_every_compose_variable_is_described_in_env_example():
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    described = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (DEPLOY / "env.example").read_text(), flags=re.M))
    assert used - described == set()


def test_entrypoint_has_every_role_the_compose_file_uses(compose):
    script = (DEPLOY / "entrypoint.sh").read_text()
    roles = set(re.findall(r"^  ([a-z.]+)\)$", script, flags=re.M))
    assert {"web", "worker", "beat", "migrate", "check", "manage.py"} <= roles
    for name, service in compose["services"].items():
        if "command" in service and name not in ("redis",):
            assert service["command"][0] in roles, name
    assert subprocess.run(["bash", "-n", str(DEPLOY / "entrypoint.sh")]).returncode == 0
    assert "gunicorn -c deploy/gunicorn.conf.py" in script


def test_nginx_proxies_to_web_and_keeps_the_ingestion_listener_internal(compose, settings):
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream or1_web \{\s*server ([\w.-]+):(\d+);", conf)
    web_env = env_of(compose["services"]["web"])
    assert (
        upstream
        and f"{upstream.group(1)}:{upstream.group(2)}" == "web:" + web_env["GUNICORN_BIND"].rsplit(":", 1)[1]
    )
    assert conf.count("{") == conf.count("}")
    assert "X-Forwarded-Proto https" in conf and "return 301 https://" in conf
    # Request bodies up to the ingestion limit must pass the proxy.
    for size in re.findall(r"client_max_body_size (\d+)m;", conf):
        assert int(size) * 1024 * 1024 > settings.OR1_INGEST_MAX_BYTES
    internal = conf[conf.index("listen 8080;") :]
    assert re.findall(r"location ([^ ]+) \{", internal) == ["/api/ingest/", "/"]
    assert "return 404" in internal.split("location / {")[1]
    proxy = compose["services"]["proxy"]
    assert all(":8080" not in str(port) for port in proxy["ports"])
    for name in ("worker", "gpu-worker"):
        assert env_of(compose["services"][name])["OR1_PUBLIC_URL"] == "http://proxy:8080"
    # Certificates come from the mounted folder.
    assert "/etc/nginx/certs/fullchain.pem" in conf and any("/etc/nginx/certs" in v for v in proxy["volumes"])
    # The template is rendered from the environment by the official image: the host name must be passed.
    assert env_of(proxy)["OR1_HOSTNAME"] == "${OR1_HOSTNAME}" and "${OR1_HOSTNAME}" in conf


# --------------------------------------------------------------------------------------------- images


def test_platform_image_installs_the_pinned_set_make_test_uses():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    args, make = arg_defaults(DEPLOY / "Dockerfile"), make_defaults()
    # The same installer, reading the same pyproject.toml, with the Makefile's torch build ...
    assert "COPY pyproject.toml README.md ./" in dockerfile
    assert "COPY deploy/install_venv.sh deploy/pins_satisfied.py deploy/" in dockerfile
    assert re.search(
        r'EXTRAS="\$\{EXTRAS\}" TORCH_SPEC="\$\{TORCH_SPEC\}".*\n\s*bash deploy/install_venv.sh', dockerfile
    )
    assert args["TORCH_SPEC"] == make["TORCH_SPEC"] and args["TORCH_INDEX_URL"] == make["TORCH_INDEX_URL"]
    # ... and make test's extras without the dev tools.
    make_extras, image_extras = make["EXTRAS"].split(","), args["EXTRAS"].split(",")
    assert image_extras == [e for e in make_extras if e != "dev"]
    # No version is restated in a Dockerfile where it could drift from the pins.
    for name in ("Dockerfile", "trainer.Dockerfile"):
        assert "pip install" not in (DEPLOY / name).read_text(), name
    # Every pin the image installs is what this test environment (the one `make test` built) has installed.
    pins = pins_module()
    wanted = pins.requirements(str(REPO / "pyproject.toml"), image_extras)
    assert len(wanted) > 20 and pins.missing(wanted) == []
    assert set(wanted) < set(pins.requirements(str(REPO / "pyproject.toml"), make_extras))


def test_platform_image_python_is_the_tested_python():
    base = arg_defaults(DEPLOY / "Dockerfile")["PYTHON_IMAGE"]
    version = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-bookworm", base)
    assert version and tuple(map(int, version.groups()[:2])) == sys.version_info[:2] == (3, 11)
    with open(REPO / "pyproject.toml", "rb") as handle:
        classifiers = tomllib.load(handle)["project"]["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers


def test_trainer_image_takes_cuda_torch_vllm_and_deepspeed_from_the_pins():
    with open(REPO / "pyproject.toml", "rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    args = arg_defaults(DEPLOY / "trainer.Dockerfile")
    torch_pin = next(r for r in extras["train"] if r.startswith("torch=="))
    assert args["TORCH_SPEC"] == torch_pin == "torch==2.13.0"  # no +cpu label: PyPI's CUDA build
    assert args["EXTRAS"] == "train,gpu"
    assert any(r.startswith("vllm==") for r in extras["gpu"]) and any(
        r.startswith("deepspeed==") for r in extras["train"]
    )
    # torch 2.13.0's Linux wheel is built for CUDA 13.0; DeepSpeed's JIT ops need nvcc of that major.
    assert re.fullmatch(r"nvidia/cuda:13\.0\.\d+-devel-ubuntu22\.04", args["CUDA_IMAGE"])
    text = (DEPLOY / "trainer.Dockerfile").read_text()
    assert "PYTHON=python3.11" in text and "bash deploy/install_venv.sh" in text


def test_images_record_their_tag_in_the_environment(monkeypatch):
    for name in ("Dockerfile", "trainer.Dockerfile"):
        text = (DEPLOY / name).read_text()
        assert "ARG OR1_IMAGE_TAG=" in text and "OR1_IMAGE_TAG=${OR1_IMAGE_TAG}" in text, name
        ignored = (DEPLOY / f"{name}.dockerignore").read_text().split()
        assert {".git", ".venv", "var", "*.egg-info"} <= set(ignored), name
    from workers.environment import environment_record

    monkeypatch.setenv("OR1_IMAGE_TAG", "registry.example.org/or1lab-trainer:0.1.0-cu130")
    assert environment_record()["image"] == "registry.example.org/or1lab-trainer:0.1.0-cu130"
    monkeypatch.delenv("OR1_IMAGE_TAG")
    assert environment_record()["image"] is None


def test_gunicorn_configuration_loads_with_threads_and_json_logs(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")}
    env |= {"GUNICORN_WORKERS": "3", "GUNICORN_THREADS": "6", "OR1_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "deploy/gunicorn.conf.py",
            "--print-config",
            "or1platform.wsgi",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    config = dict(re.findall(r"^(\w+)\s+= (.*)$", out.stdout, flags=re.M))
    assert config["worker_class"] == "gthread" and config["workers"] == "3" and config["threads"] == "6"
    assert config["bind"] == "['0.0.0.0:8000']" and config["control_socket_disable"] == "True"
    assert config["accesslog"] == "-" and "AccessJsonFormatter" in config["logconfig_dict"]


# ---------------------------------------------------------------------------------------------- docs

_PY_READS = re.compile(
    r"(?:env_(?:str|int|bool|list|path)|_int|os\.environ\.get|os\.getenv|os\.environ\.setdefault|env\.get)"
    r'\(\s*"([A-Z][A-Z0-9_]+)"'
    r'|(?:os\.environ|env)\["([A-Z][A-Z0-9_]+)"\](?!\s*=[^=])'
)


def variables_read() -> set[str]:
    found = set()
    sources = [*(REPO / "or1platform").rglob("*.py"), *(REPO / "workers").rglob("*.py")]
    sources += [*(REPO / "experiments").rglob("*.py"), DEPLOY / "gunicorn.conf.py"]
    for path in sources:
        for groups in _PY_READS.findall(path.read_text()):
            found.update(g for g in groups if g)
    found.update(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", (DEPLOY / "entrypoint.sh").read_text()))
    found.update(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    return found


def test_operations_doc_lists_every_environment_variable():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", (REPO / "docs" / "operations.md").read_text()))
    read = variables_read()
    assert {
        "DATABASE_URL",
        "OR1_WORKER_QUEUE",
        "SLURM_REST_URL",
        "GUNICORN_WORKERS",
        "OR1_LOG_FORMAT",
    } <= read
    assert read - documented == set(), "add these to docs/operations.md (configuration reference)"
