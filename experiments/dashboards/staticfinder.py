"""Serve plotly.js from the installed ``plotly`` package as ``vendor/plotly.min.js``.

The pinned ``plotly`` Python package ships the matching plotly.js bundle; finding it there keeps a 4.8 MB file
out of git and the browser's copy always in step with the pinned package. It is a regular staticfiles finder,
so ``collectstatic`` copies it (and the manifest storage hashes it) like any other file, and WhiteNoise serves
it in development straight from the package.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PATH = "vendor/plotly.min.js"


def bundle() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


class PlotlyFinder(BaseFinder):
    def find(self, path, find_all=False, **kwargs):
        find_all = find_all or kwargs.get("all", False)
        if path == PATH and bundle().is_file():
            return [str(bundle())] if find_all else str(bundle())
        return [] if find_all else None

    def list(self, ignore_patterns):
        if bundle().is_file():
            storage = FileSystemStorage(location=str(bundle().parent))
            storage.prefix = PATH.rsplit("/", 1)[0]
            yield bundle().name, storage

    def check(self, **kwargs):
        from django.core.checks import Error

        if not bundle().is_file():
            return [Error(f"plotly.js is missing from the plotly package: {bundle()}", id="experiments.E001")]
        return []
