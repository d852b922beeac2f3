"""The tail of a run's ``<run_dir>/trainer.log`` (the trainer's stdout and stderr, written by the launcher).

Logs of long runs grow to gigabytes and may hold anything a library printed, so only the end of the file is
read (at most ``MAX_BYTES``), bytes that are not UTF-8 become U+FFFD, control characters other than tabs are
replaced, a progress bar's carriage returns keep only what the terminal would show, and very long lines are
cut. A run with no directory or no log yet simply has no lines.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from experiments.models import Run

LOG_FILE = "trainer.log"
MAX_BYTES = 256 * 1024
MAX_LINE_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def log_path(run: Run) -> Path | None:
    return Path(run.run_dir) / LOG_FILE if run.run_dir else None


def _clean(line: str) -> str:
    line = line.rstrip("\r").rsplit("\r", 1)[-1]  # "10%\r20%\r30%" shows as "30%" in a terminal
    line = _CONTROL.sub("\ufffd", line)
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " …"


def tail(run: Run, lines: int = 100) -> list[str]:
    """The last ``lines`` lines of the run's trainer log, cleaned for display; [] when there is none."""
    path = log_path(run)
    if path is None or lines <= 0:
        return []
    try:
        if not path.is_file():  # not there yet, or something that is not a log (a FIFO would block)
            return []
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = max(0, size - MAX_BYTES)
            handle.seek(start)
            data = handle.read(MAX_BYTES)
    except OSError:  # removed meanwhile, unreadable: no lines rather than a broken page
        return []
    text = data.decode("utf-8", errors="replace")
    parts = text.split("\n")
    if start > 0:
        parts = parts[1:]  # the first piece is the end of a line that began before the window
    if parts and parts[-1] == "":
        parts.pop()
    return [_clean(p) for p in parts[-lines:]]
