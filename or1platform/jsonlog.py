"""One JSON object per log line, for production: what log collectors (journald, Docker, Loki, CloudWatch)
parse without a grok pattern, and where a multi-line traceback stays inside its record instead of spilling
into lines of its own.

Each record carries ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``process`` and, where
there is one, ``exc_info`` (the formatted traceback) and any ``extra={...}`` fields the caller passed.
Standard library only: gunicorn's own loggers use the same formatter (``deploy/gunicorn.conf.py``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

#: attributes every LogRecord has; anything else on a record came from ``extra=`` and is emitted too
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str)
