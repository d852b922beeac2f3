"""A synchronous slurmrestd client: ping, submit, look up, signal and cancel batch jobs.

Plain Python over httpx, no Django, so the platform's Slurm launcher, a management command or a
script can all use it. Every failure is a `SlurmError` subclass carrying Slurm's own message (see
errors.py); the JSON of each API version is handled by an adapter (adapters.py).
"""

from __future__ import annotations

import logging
import os
import signal as _signal
import time
from collections.abc import Callable, Mapping

import httpx

from .adapters import SlurmAdapter, adapter_for
from .errors import (
    ALREADY_DONE,
    AMBIGUOUS,
    TRANSITION_STATE_NO_UPDATE,
    SlurmAuthError,
    SlurmError,
    SlurmJobNotFound,
    SlurmSubmitRejected,
    SlurmUnavailable,
    classify,
)
from .models import JobInfo, JobRequest, PingResult, is_terminal
from .tokens import MintedToken, StaticToken, load_key

log = logging.getLogger(__name__)


def signal_name(sig: str | int) -> str:
    """'SIGTERM' for 'SIGTERM', 'TERM', 15 or '15'; slurmrestd answers HTTP 400 to names it does not know."""
    if isinstance(sig, int) or (isinstance(sig, str) and sig.isdigit()):
        return _signal.Signals(int(sig)).name
    name = sig.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in _signal.Signals.__members__:
        raise ValueError(f"unknown signal {sig!r}")
    return name


class SlurmClient:
    """One slurmrestd endpoint as one user.

    Give either `token` (used as is until it expires) or `jwt_key` (the cluster's HS256 key as bytes
    or a file path; short tokens are then minted and renewed here). `transport` is passed to httpx,
    e.g. to talk over a unix socket.
    """

    def __init__(
        self,
        base_url: str,
        api_version: str,
        user: str,
        token: str | None = None,
        jwt_key: bytes | str | os.PathLike | None = None,
        token_lifespan_s: int = 3600,
        timeout: float = 10,
        transport: httpx.BaseTransport | None = None,
    ):
        if (token is None) == (jwt_key is None):
            raise ValueError(
                "give exactly one of token= (a fixed JWT) or jwt_key= (mint tokens from the key)"
            )
        if not user:
            raise ValueError("user is required: slurmrestd runs every request as X-SLURM-USER-NAME")
        self.adapter: SlurmAdapter = adapter_for(api_version)
        self.user = user
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._credentials = (
            StaticToken(token)
            if token is not None
            else MintedToken(load_key(jwt_key), user, token_lifespan_s)
        )
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs) -> SlurmClient:
        """From SLURM_REST_URL/_API/_USER and SLURM_REST_TOKEN, or SLURM_JWT_KEY_FILE when no token is set."""
        env = os.environ if env is None else env
        missing = [k for k in ("SLURM_REST_URL", "SLURM_REST_USER") if not env.get(k)]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        credentials = (
            {"token": env["SLURM_REST_TOKEN"]}
            if env.get("SLURM_REST_TOKEN")
            else {"jwt_key": env.get("SLURM_JWT_KEY_FILE") or None}
        )
        return cls(
            env["SLURM_REST_URL"],
            env.get("SLURM_REST_API", "v0.0.38"),
            env["SLURM_REST_USER"],
            **credentials,
            **kwargs,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SlurmClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, endpoint: str, operation: str, **kwargs) -> tuple[int, dict, list[dict]]:
        """(HTTP status, JSON body, normalised errors); raises SlurmUnavailable/SlurmAuthError itself."""
        headers = {
            "X-SLURM-USER-NAME": self.user,
            "X-SLURM-USER-TOKEN": self._credentials.token(),
            "Accept": "application/json",
        }
        url = self.adapter.path(endpoint)
        try:
            response = self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise SlurmUnavailable(
                f"{operation}: slurmrestd at {self.base_url} did not answer within {self.timeout}s ({exc})"
            ) from exc
        except httpx.TransportError as exc:
            raise SlurmUnavailable(f"{operation}: cannot reach slurmrestd at {self.base_url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # Plain-text answers: 401 "Authentication failure" (no headers), 404 for unknown paths, proxies.
            raise classify(operation, response.status_code, [], self.user, response.text)
        return response.status_code, body, self.adapter.errors(body)

    def _fail(self, operation: str, status: int, errors: list[dict]) -> SlurmError:
        """The error for a failed call; an ambiguous one is checked against a ping of the same credentials.

        With a bad token v0.0.38 answers a job lookup with "Unable to find JobId" and no errno (-1), and a
        submit or cancel with "Zero Bytes were transmitted or received" (slurmctld drops the connection):
        neither says "credentials". A lookup that fails that way must not read as "job gone".
        """
        error = classify(operation, status, errors, self.user)
        ambiguous = type(error) in (SlurmError, SlurmSubmitRejected) and error.error_numbers & AMBIGUOUS
        if operation == "ping" or not ambiguous:
            return error
        try:
            self.ping()
        except SlurmAuthError as auth:
            return SlurmAuthError(f"{error.message}; {auth.message}", error.errors + auth.errors, status)
        except SlurmError:
            pass
        return error

    # ------------------------------------------------------------------ API

    def ping(self) -> PingResult:
        """Whether slurmrestd answers for this user and its slurmctld responds."""
        status, body, errors = self._request("GET", "ping", "ping")
        if status >= 400 or errors:
            raise self._fail("ping", status, errors)
        return self.adapter.parse_ping(body)

    def submit(self, request: JobRequest) -> int:
        """Submit a batch job; returns its id. Raises SlurmSubmitRejected with Slurm's reason."""
        status, body, errors = self._request(
            "POST", "job/submit", "submit", json=self.adapter.submit_body(request)
        )
        job_id = self.adapter.parse_submit(body)
        if status >= 400 or job_id is None:
            raise self._fail("submit", status, errors)
        # Slurm queues some jobs it cannot start now (e.g. more nodes than the partition allows) and says
        # so next to the job id, as sbatch does; the job stays PENDING with that reason.
        for note in errors + self.adapter.warnings(body):
            log.warning("Slurm accepted job %s (%s) with a remark: %s", job_id, request.name, note)
        return job_id

    def job(self, job_id: int) -> JobInfo | None:
        """The job's current state, or None when Slurm no longer knows it (error 2017)."""
        operation = f"job {job_id}"
        status, body, errors = self._request("GET", f"job/{int(job_id)}", operation)
        if status >= 400 or errors:
            error = self._fail(operation, status, errors)
            if isinstance(error, SlurmJobNotFound):
                return None
            raise error
        return self.adapter.parse_job(body)

    def cancel(self, job_id: int, signal: str | int = "SIGTERM") -> None:
        """Send `signal` to every process of the job (batch script and steps).

        SIGKILL is Slurm's full cancel (scancel): SIGCONT and SIGTERM, KillWait seconds, then SIGKILL,
        ending CANCELLED. Any other signal is only delivered; the job then ends as its processes do
        (COMPLETED if the trainer exits 0 after checkpointing), so the platform records the cancel.
        A job that has already ended is not an error; an unknown one raises SlurmJobNotFound.
        """
        operation = f"cancel job {job_id}"
        status, _body, errors = self._request(
            "DELETE", f"job/{int(job_id)}", operation, params={"signal": signal_name(signal)}
        )
        if errors and all(e.get("error_number") == ALREADY_DONE for e in errors):
            return
        if status >= 400 or errors:
            raise self._fail(operation, status, errors)

    def wait(
        self,
        job_id: int,
        timeout_s: float,
        until: Callable[[JobInfo], bool] = lambda info: is_terminal(info.state),
        poll_s: float = 0.25,
    ) -> JobInfo | None:
        """Poll until `until(info)` holds (default: a terminal state) or the job is gone (None).

        Raises TimeoutError naming the last state seen.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.job(job_id)
            if info is None or until(info):
                return info
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"job {job_id} still {info.state} (reason {info.reason}) after {timeout_s}s"
                )
            time.sleep(poll_s)

    def cancel_then_kill(self, job_id: int, grace_s: float, poll_s: float = 0.5) -> JobInfo | None:
        """Stop a job the way the trainer expects: SIGTERM (checkpoint and stop), SIGKILL after `grace_s`.

        A pending job has nothing to checkpoint (and Slurm refuses non-KILL signals to it), so it is
        cancelled at once. Returns the job as last seen; after the SIGKILL it may still be COMPLETING.
        """
        info = self.job(job_id)
        if info is None or info.terminal:
            return info
        if info.state != "PENDING":
            try:
                self.cancel(job_id, "SIGTERM")
            except SlurmError as exc:
                if TRANSITION_STATE_NO_UPDATE not in exc.error_numbers:  # it went back to pending meanwhile
                    raise
            else:
                try:
                    return self.wait(job_id, grace_s, poll_s=poll_s)
                except TimeoutError:
                    log.info("job %s still running %.0fs after SIGTERM; sending SIGKILL", job_id, grace_s)
        self.cancel(job_id, "SIGKILL")
        return self.job(job_id)
