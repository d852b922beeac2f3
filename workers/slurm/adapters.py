"""slurmrestd JSON, one adapter per API generation, behind one interface.

- `V0038Adapter`: OpenAPI v0.0.38 (Slurm 22.05, what CI runs; checked against a live slurmrestd).
  `environment` is an object, plain integers, `job_state` a string, `exit_code` the raw wait status.
- `V0040Adapter`: v0.0.40, v0.0.41 and v0.0.42 (Slurm 23.11 to 24.11), written from Slurm's data_parser
  sources and generated docs: `environment` is a list of "K=V" strings, numbers may come as
  `{"set", "infinite", "number"}` objects, `job_state` is a list (base state plus flags), `exit_code`
  is `{"status": [...], "return_code": {...}, "signal": {"id": {...}, "name": ...}}`, the script goes
  inside `job`, GPUs are `tres_per_node: "gres/gpu:N"` and a signal answer lists per-job errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime

from .models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    ControllerPing,
    ExitStatus,
    JobInfo,
    JobRequest,
    PingResult,
    is_terminal,
)

SUPPORTED_VERSIONS = ("v0.0.38", "v0.0.40", "v0.0.41", "v0.0.42")


def _number(value) -> int | None:
    """An integer from a plain number or a `{"set", "infinite", "number"}` object; None if unset/infinite."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        return int(value) if value.strip().lstrip("-").isdigit() else None  # "Infinity" in complex mode
    if isinstance(value, dict):
        if value.get("set") is False or value.get("infinite"):
            return None
        return _number(value.get("number"))
    return None


def _timestamp(value) -> datetime | None:
    seconds = _number(value)
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


def _text(value) -> str | None:
    """Slurm writes absent strings as "" and an absent reason as "None"."""
    return value if isinstance(value, str) and value and value != "None" else None


def _normalise_error(entry: dict) -> dict:
    number = entry.get("error_number", entry.get("error_code"))  # v0.0.38 submit answers say error_code
    return {
        "error": str(entry.get("error") or ""),
        "error_number": _number(number),
        "description": str(entry.get("description") or ""),
        "source": str(entry.get("source") or ""),
    }


class SlurmAdapter(ABC):
    """Maps requests and answers of one slurmrestd API version."""

    version: str

    def path(self, endpoint: str) -> str:
        return f"/slurm/{self.version}/{endpoint}"

    def errors(self, body: dict) -> list[dict]:
        return [_normalise_error(e) for e in body.get("errors") or [] if isinstance(e, dict)]

    def warnings(self, body: dict) -> list[dict]:
        return [_normalise_error(w) for w in body.get("warnings") or [] if isinstance(w, dict)]

    def parse_submit(self, body: dict) -> int | None:
        return _number(body.get("job_id"))

    def parse_job(self, body: dict) -> JobInfo | None:
        """The first job of a `GET job/{id}` answer, None when the list is empty."""
        jobs = body.get("jobs") or []
        return self._job(jobs[0]) if jobs else None

    def parse_ping(self, body: dict) -> PingResult:
        meta = body.get("meta") or {}
        slurm = meta.get("slurm") or meta.get("Slurm") or {}
        return PingResult(
            controllers=tuple(self._ping(p) for p in body.get("pings") or []),
            slurm_release=slurm.get("release"),
            api_version=self.version,
        )

    @abstractmethod
    def submit_body(self, request: JobRequest) -> dict: ...

    @abstractmethod
    def _job(self, job: dict) -> JobInfo: ...

    @abstractmethod
    def _ping(self, ping: dict) -> ControllerPing: ...

    @staticmethod
    def _job_info(job: dict, state: str, flags: tuple[str, ...], exit_status: ExitStatus | None) -> JobInfo:
        node_list = _text(job.get("nodes"))
        # A job cancelled while pending gets start_time = end_time but never had nodes.
        started = state != "PENDING" and node_list is not None
        terminal = is_terminal(state)
        return JobInfo(
            job_id=_number(job.get("job_id")) or 0,
            name=job.get("name") or "",
            state=state,
            reason=_text(job.get("state_reason")),
            node_list=node_list,
            start_time=_timestamp(job.get("start_time")) if started else None,
            end_time=_timestamp(job.get("end_time")) if terminal else None,
            exit=exit_status if terminal else None,
            state_flags=flags,
            partition=_text(job.get("partition")),
            raw=job,
        )


class V0038Adapter(SlurmAdapter):
    version = "v0.0.38"

    def submit_body(self, request: JobRequest) -> dict:
        job: dict = {
            "name": request.name,
            "current_working_directory": request.working_dir,
            # Required: without it slurmrestd answers HTTP 400 "environment must be set".
            "environment": request.job_environment(),
            # An integer: the [min, max] list form is accepted by 22.05 but ignored ([2, 2] ran on 1 node).
            "nodes": request.nodes,
        }
        optional = {
            "partition": request.partition,
            "account": request.account,
            "qos": request.qos,
            "gres": f"gpu:{request.gpus_per_node}" if request.gpus_per_node else None,
            "cpus_per_task": request.cpus_per_task,
            "memory_per_node": request.memory_mb,
            "time_limit": request.time_limit_min,
            "constraints": request.constraint,
            "standard_output": request.stdout,
            "standard_error": request.stderr,
            "requeue": request.requeue,
        }
        job.update({k: v for k, v in optional.items() if v is not None})
        return {"script": request.script, "job": job}

    def _job(self, job: dict) -> JobInfo:
        # job_state_string(): the base state, or a flag such as COMPLETING/CONFIGURING when one is set.
        state = str(job.get("job_state") or "UNKNOWN").upper()
        raw_exit = _number(job.get("exit_code"))
        exit_status = ExitStatus.from_wait_status(raw_exit) if raw_exit is not None else None
        return self._job_info(job, state, (), exit_status)

    def _ping(self, ping: dict) -> ControllerPing:
        return ControllerPing(
            hostname=ping.get("hostname") or "",
            responding=str(ping.get("ping") or "").upper() == "UP",
            mode=ping.get("mode"),
        )


class V0040Adapter(SlurmAdapter):
    def __init__(self, version: str = "v0.0.40"):
        if version not in ("v0.0.40", "v0.0.41", "v0.0.42"):
            raise ValueError(f"V0040Adapter covers v0.0.40 to v0.0.42, not {version!r}")
        self.version = version

    def submit_body(self, request: JobRequest) -> dict:
        job: dict = {
            # v0.0.41 deprecated the top-level "script"; inside "job" every version of this family reads it.
            "script": request.script,
            "name": request.name,
            "current_working_directory": request.working_dir,
            "environment": [f"{k}={v}" for k, v in request.job_environment().items()],
            "nodes": str(request.nodes),
        }
        optional = {
            "partition": request.partition,
            "account": request.account,
            "qos": request.qos,
            "tres_per_node": f"gres/gpu:{request.gpus_per_node}" if request.gpus_per_node else None,
            "cpus_per_task": request.cpus_per_task,
            "memory_per_node": _set(request.memory_mb),
            "time_limit": _set(request.time_limit_min),
            "constraints": request.constraint,
            "standard_output": request.stdout,
            "standard_error": request.stderr,
            "requeue": request.requeue,
        }
        job.update({k: v for k, v in optional.items() if v is not None})
        return {"job": job}

    def errors(self, body: dict) -> list[dict]:
        """`errors[]`, plus the per-job failures of a signal answer (`status[].error`, v0.0.41+)."""
        found = super().errors(body)
        for entry in body.get("status") or []:
            err = entry.get("error") if isinstance(entry, dict) else None
            if isinstance(err, dict) and _number(err.get("code")):
                found.append(
                    {
                        "error": str(err.get("string") or ""),
                        "error_number": _number(err.get("code")),
                        "description": str(err.get("message") or ""),
                        "source": f"signal JobId={_number(entry.get('job_id'))}",
                    }
                )
        return found

    def _job(self, job: dict) -> JobInfo:
        states = job.get("job_state") or ["UNKNOWN"]
        states = [states] if isinstance(states, str) else list(states)
        states = [str(s).upper() for s in states]
        base = next((s for s in states if s in TERMINAL_STATES or s in ACTIVE_STATES), states[0])
        # v0.0.38 reports a job that is being torn down as COMPLETING; keep that meaning here too.
        state = "COMPLETING" if "COMPLETING" in states else base
        flags = tuple(s for s in states if s != state)
        return self._job_info(job, state, flags, self._exit(job.get("exit_code")))

    @staticmethod
    def _exit(value) -> ExitStatus | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raw = _number(value)
            return ExitStatus.from_wait_status(raw) if raw is not None else None
        status = {str(s).upper() for s in value.get("status") or []}
        if "PENDING" in status:
            return None
        signal = value.get("signal") or {}
        signal_id = _number(signal.get("id")) if isinstance(signal, dict) else None
        if status & {"SIGNALED", "CORE_DUMPED"}:
            return ExitStatus(return_code=None, signal=signal_id)
        return ExitStatus(return_code=_number(value.get("return_code")))

    def _ping(self, ping: dict) -> ControllerPing:
        if "responding" in ping:  # v0.0.42; "pinged" is deprecated there
            responding = bool(ping["responding"])
        else:
            responding = str(ping.get("pinged") or "").upper() == "UP"
        mode = ping.get("mode")
        if mode is None and "primary" in ping:
            mode = "primary" if ping["primary"] else "backup"
        return ControllerPing(hostname=ping.get("hostname") or "", responding=responding, mode=mode)


def _set(value: int | None) -> dict | None:
    return None if value is None else {"set": True, "infinite": False, "number": value}


def adapter_for(api_version: str) -> SlurmAdapter:
    """The adapter for 'v0.0.38', 'v0.0.40', 'v0.0.41' or 'v0.0.42' (the leading 'v' may be left out)."""
    version = api_version if api_version.startswith("v") else f"v{api_version}"
    if version == "v0.0.38":
        return V0038Adapter()
    if version in SUPPORTED_VERSIONS:
        return V0040Adapter(version)
    raise ValueError(
        f"unsupported slurmrestd API version {api_version!r}; supported: {', '.join(SUPPORTED_VERSIONS)}"
    )
