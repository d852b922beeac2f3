"""Typed errors for slurmrestd answers.

slurmrestd's HTTP status codes say little: a bad token, an unknown job id and a rejected submission all
come back as HTTP 500 (v0.0.38 on Slurm 22.05, see services-notes.md section 1). What counts is the
`errors[]` array of the JSON body, whose `error_number` is Slurm's own errno. `classify` turns a status
and those errors into one of the exceptions below, and every message carries the cluster's own text,
so that the platform can show a user why Slurm said no.
"""

from __future__ import annotations

# Slurm errno values (slurm/slurm_errno.h) that decide the exception type.
INVALID_JOB_ID = 2017  # ESLURM_INVALID_JOB_ID: unknown, or finished longer than MinJobAge ago
TRANSITION_STATE_NO_UPDATE = 2020  # "Job can not be altered now": e.g. a non-KILL signal to a pending job
ALREADY_DONE = 2021  # ESLURM_ALREADY_DONE: the job has already finished
PROTOCOL_AUTHENTICATION_ERROR = 1007
AUTH_ERRORS = range(6000, 6100)  # ESLURM_AUTH_*: invalid or expired credential
UNREACHABLE = frozenset({1001, 1002, 1003, 1004, 1800, 1801, 1802, 1803, 1804, 1805})  # slurmctld unreachable
# No errno (-1) or a dropped connection (5000-5005 socket errors): what a rejected credential looks like on
# some calls, but also other failures. The client tells them apart with a ping (client.py, `_fail`).
AMBIGUOUS = frozenset({-1, *range(5000, 5006)})


class SlurmError(Exception):
    """slurmrestd refused or failed a request; `errors` holds its normalised `errors[]` entries."""

    def __init__(self, message: str, errors: list[dict] | None = None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.errors = list(errors or [])
        self.status_code = status_code

    @property
    def error_numbers(self) -> set[int]:
        return {e["error_number"] for e in self.errors if e.get("error_number") is not None}


class SlurmAuthError(SlurmError):
    """The user name and token (or minted key) were not accepted: wrong, expired, or for another user."""


class SlurmJobNotFound(SlurmError):
    """Slurm does not know the job id (never existed, or purged MinJobAge seconds after it ended)."""


class SlurmSubmitRejected(SlurmError):
    """Slurm refused a job submission, e.g. an unknown partition or more GPUs than any node has."""


class SlurmUnavailable(SlurmError):
    """slurmrestd (or the slurmctld behind it) could not be reached or did not answer in time."""


def describe(errors: list[dict]) -> str:
    """One line from Slurm's errors: 'Invalid partition name specified (error 2000)'."""
    parts = []
    for e in errors:
        text = e.get("error") or ""
        desc = e.get("description") or ""
        if desc and desc != text:
            text = f"{desc}: {text}" if text and text != "Unspecified error" else desc
        if e.get("error_number") not in (None, 0, -1):
            text = f"{text} (error {e['error_number']})"
        parts.append(text or "no error text")
    return "; ".join(parts)


def _is_auth_failure(errors: list[dict]) -> bool:
    for e in errors:
        number = e.get("error_number")
        if number == PROTOCOL_AUTHENTICATION_ERROR or number in AUTH_ERRORS:
            return True
        # v0.0.38: slurmrestd loads the controller config with the caller's token first; with a bad or
        # mismatched token that fails as "slurmctld config is unable to load" with no errno (-1).
        if e.get("source") == "slurm_load_ctl_conf" and number not in UNREACHABLE:
            return True
    return False


def classify(
    operation: str, status_code: int | None, errors: list[dict], user: str, body_text: str = ""
) -> SlurmError:
    """The exception for a failed `operation` ('submit', 'job 42', ...) as slurmrestd answered it."""
    detail = describe(errors) if errors else (body_text.strip()[:300] or f"HTTP {status_code}")
    numbers = {e.get("error_number") for e in errors}
    if status_code in (401, 403) or _is_auth_failure(errors):
        return SlurmAuthError(
            f"{operation}: slurmrestd rejected the credentials for user {user!r} "
            f"(bad, expired or mismatched token or JWT key): {detail}",
            errors,
            status_code,
        )
    if numbers & UNREACHABLE or status_code in (502, 503, 504):
        return SlurmUnavailable(f"{operation}: Slurm controller unreachable: {detail}", errors, status_code)
    if INVALID_JOB_ID in numbers:
        return SlurmJobNotFound(f"{operation}: {detail}", errors, status_code)
    if operation == "submit":
        return SlurmSubmitRejected(f"submit rejected by Slurm: {detail}", errors, status_code)
    return SlurmError(f"{operation}: {detail}", errors, status_code)
