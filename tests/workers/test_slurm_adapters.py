"""slurmrestd JSON <-> JobRequest/JobInfo for every supported API version, without a cluster.

The v0.0.38 records were recorded from the CI cluster's slurmrestd (Slurm 22.05.8), trimmed to the fields
the adapter reads. The v0.0.40 to v0.0.42 answers are written from Slurm's data_parser sources and
generated REST docs (23.11, 24.05, 24.11): no such slurmrestd runs here.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.slurm import (
    ExitStatus,
    JobRequest,
    SlurmAuthError,
    SlurmError,
    SlurmJobNotFound,
    SlurmSubmitRejected,
    SlurmUnavailable,
    V0038Adapter,
    V0040Adapter,
    adapter_for,
    is_terminal,
)
from workers.slurm.errors import classify
from workers.slurm.models import DEFAULT_PATH

T0 = 1796149554


def _n(number):
    return {"set": True, "infinite": False, "number": number}


UNSET = {"set": False, "infinite": False, "number": 0}

REQUEST = JobRequest(
    name="run 7",
    script="#!/bin/bash\nexec or1-train run spec.yaml --out /runs/7\n",
    working_dir="/runs/7",
    partition="gpu",
    account="rl",
    qos="normal",
    nodes=2,
    gpus_per_node=4,
    cpus_per_task=16,
    memory_mb=64000,
    time_limit_min=90,
    constraint="a100",
    stdout="/runs/7/slurm-%j.out",
    stderr="/runs/7/slurm-%j.err",
    environment={"OR1_RUN": "7", "PATH": "/opt/or1/bin:/usr/bin:/bin"},
)


# ---------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("version", "cls"),
    [
        ("v0.0.38", V0038Adapter),
        ("0.0.38", V0038Adapter),
        ("v0.0.40", V0040Adapter),
        ("v0.0.42", V0040Adapter),
    ],
)
def test_adapter_for_supported_versions(version, cls):
    adapter = adapter_for(version)
    assert isinstance(adapter, cls)
    assert adapter.path("ping") == f"/slurm/v{version.lstrip('v')}/ping"


@pytest.mark.parametrize("version", ["v0.0.37", "v0.0.39", "v0.0.43", "latest"])
def test_adapter_for_unsupported_version_names_the_supported_ones(version):
    with pytest.raises(ValueError, match=r"unsupported slurmrestd API version .*v0\.0\.38, v0\.0\.40"):
        adapter_for(version)


# ---------------------------------------------------------------- exit codes and states


@pytest.mark.parametrize(
    ("raw", "return_code", "signal"),
    [(0, 0, None), (768, 3, None), (256 * 255, 255, None), (9, None, 9), (15, None, 15)],
)
def test_v0038_wait_status_is_decoded(raw, return_code, signal):
    status = ExitStatus.from_wait_status(raw)
    assert (status.return_code, status.signal) == (return_code, signal)
    assert status.ok is (raw == 0)


def test_signal_name():
    assert ExitStatus(None, 15).signal_name == "SIGTERM"
    assert ExitStatus(0).signal_name is None


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        ("COMPLETED", True),
        ("failed", True),
        ("CANCELLED", True),
        ("TIMEOUT", True),
        ("PREEMPTED", True),
        ("NODE_FAIL", True),
        ("OUT_OF_MEMORY", True),
        ("PENDING", False),
        ("RUNNING", False),
        ("COMPLETING", False),
        ("CONFIGURING", False),
        ("SUSPENDED", False),
        ("REQUEUED", False),
    ],
)
def test_is_terminal(state, terminal):
    assert is_terminal(state) is terminal


# ---------------------------------------------------------------- v0.0.38 (recorded)

V38_FAILED_EXIT_3 = {
    "job_id": 5,
    "name": "p1",
    "job_state": "FAILED",
    "state_reason": "NonZeroExitCode",
    "state_description": "",
    "nodes": "vm",
    "batch_host": "vm",
    "partition": "debug",
    "start_time": T0,
    "end_time": T0 + 1,
    "submit_time": T0,
    "exit_code": 768,
    "derived_exit_code": 0,
    "time_limit": None,
    "user_name": "slurmci",
    "node_count": 1,
}
V38_RUNNING = {
    **V38_FAILED_EXIT_3,
    "job_id": 20,
    "name": "rec",
    "job_state": "RUNNING",
    "state_reason": "None",
    "end_time": T0 + 300,  # the expected end (start + time limit), not an end
    "exit_code": 0,
    "time_limit": 5,
}
V38_CANCELLED_WHILE_PENDING = {
    **V38_FAILED_EXIT_3,
    "job_id": 12,
    "name": "",
    "job_state": "CANCELLED",
    "state_reason": "PartitionNodeLimit",
    "nodes": "",
    "batch_host": "",
    "exit_code": 0,
}
V38_SIGNALLED = {**V38_FAILED_EXIT_3, "job_id": 18, "state_reason": "JobLaunchFailure", "exit_code": 15}


def test_v0038_failed_job():
    info = V0038Adapter().parse_job({"jobs": [V38_FAILED_EXIT_3], "errors": []})
    assert info.job_id == 5 and info.name == "p1" and info.partition == "debug"
    assert info.state == "FAILED" and info.terminal and info.state_flags == ()
    assert info.reason == "NonZeroExitCode"
    assert info.exit == ExitStatus(return_code=3, signal=None)
    assert info.node_list == "vm"
    assert info.start_time == datetime.fromtimestamp(T0, tz=UTC)
    assert info.end_time == datetime.fromtimestamp(T0 + 1, tz=UTC)


def test_v0038_running_job_has_no_exit_and_no_end():
    info = V0038Adapter().parse_job({"jobs": [V38_RUNNING]})
    assert info.state == "RUNNING" and not info.terminal
    assert info.reason is None  # Slurm's "None"
    assert info.exit is None
    assert info.start_time == datetime.fromtimestamp(T0, tz=UTC)
    assert info.end_time is None


def test_v0038_job_cancelled_while_pending_never_started():
    info = V0038Adapter().parse_job({"jobs": [V38_CANCELLED_WHILE_PENDING]})
    assert info.state == "CANCELLED" and info.reason == "PartitionNodeLimit"
    assert info.node_list is None and info.start_time is None
    assert info.end_time is not None


def test_v0038_signalled_job():
    info = V0038Adapter().parse_job({"jobs": [V38_SIGNALLED]})
    assert info.exit == ExitStatus(return_code=None, signal=15)
    assert info.exit.signal_name == "SIGTERM" and not info.exit.ok


def test_v0038_empty_job_list_is_none():
    assert V0038Adapter().parse_job({"jobs": [], "errors": [{"error_number": 2017}]}) is None


def test_v0038_submit_body():
    body = V0038Adapter().submit_body(REQUEST)
    assert body == {
        "script": REQUEST.script,
        "job": {
            "name": "run 7",
            "current_working_directory": "/runs/7",
            "environment": {"PATH": "/opt/or1/bin:/usr/bin:/bin", "OR1_RUN": "7"},
            "nodes": 2,
            "partition": "gpu",
            "account": "rl",
            "qos": "normal",
            "gres": "gpu:4",
            "cpus_per_task": 16,
            "memory_per_node": 64000,
            "time_limit": 90,
            "constraints": "a100",
            "standard_output": "/runs/7/slurm-%j.out",
            "standard_error": "/runs/7/slurm-%j.err",
        },
    }


def test_minimal_request_gets_a_path_and_no_optional_fields():
    minimal = JobRequest(name="x", script="#!/bin/bash\ntrue\n", working_dir="/tmp")
    job = V0038Adapter().submit_body(minimal)["job"]
    assert job == {
        "name": "x",
        "current_working_directory": "/tmp",
        "environment": {"PATH": DEFAULT_PATH},
        "nodes": 1,
    }
    job40 = V0040Adapter("v0.0.41").submit_body(minimal)["job"]
    assert job40["environment"] == [f"PATH={DEFAULT_PATH}"]
    assert set(job40) == {"script", "name", "current_working_directory", "environment", "nodes"}


def test_v0038_errors_are_normalised():
    # Submit answers say "error_code", the others "error_number".
    body = {"errors": [{"error_code": 2000, "error": "Invalid partition name specified"}]}
    assert V0038Adapter().errors(body) == [
        {"error": "Invalid partition name specified", "error_number": 2000, "description": "", "source": ""}
    ]


def test_v0038_ping():
    body = {
        "meta": {"plugin": {"type": "openapi/v0.0.38"}, "Slurm": {"release": "22.05.8"}},
        "errors": [],
        "pings": [{"hostname": "vm", "ping": "UP", "status": 0, "mode": "primary"}],
    }
    result = V0038Adapter().parse_ping(body)
    assert result.ok and result.slurm_release == "22.05.8" and result.api_version == "v0.0.38"
    assert result.controllers[0].hostname == "vm" and result.controllers[0].mode == "primary"
    down = V0038Adapter().parse_ping({"pings": [{"hostname": "vm", "ping": "DOWN", "mode": "primary"}]})
    assert not down.ok


# ---------------------------------------------------------------- v0.0.40 .. v0.0.42 (from the schema)

META_41 = {
    "plugin": {
        "type": "openapi/slurmctld",
        "name": "Slurm OpenAPI slurmctld",
        "data_parser": "data_parser/v0.0.41",
        "accounting_storage": "",
    },
    "client": {"source": "[localhost]:51234", "user": "slurmci", "group": "slurmci"},
    "command": [],
    "slurm": {
        "version": {"major": "24", "micro": "4", "minor": "05"},
        "release": "24.05.4",
        "cluster": "or1",
    },
}


def _v40_job(**fields) -> dict:
    job = {
        "job_id": 4242,
        "name": "run-7",
        "job_state": ["RUNNING"],
        "state_reason": "None",
        "state_description": "",
        "nodes": "gpu[01-02]",
        "batch_host": "gpu01",
        "partition": "gpu",
        "user_name": "slurmci",
        "node_count": _n(2),
        "submit_time": _n(T0 - 60),
        "start_time": _n(T0),
        "end_time": _n(T0 + 5400),
        "time_limit": _n(90),
        "exit_code": {"status": ["PENDING"], "return_code": UNSET, "signal": {"id": UNSET, "name": ""}},
        "derived_exit_code": {
            "status": ["PENDING"],
            "return_code": UNSET,
            "signal": {"id": UNSET, "name": ""},
        },
    }
    job.update(fields)
    return {
        "jobs": [job],
        "last_backfill": _n(T0),
        "last_update": _n(T0),
        "meta": META_41,
        "errors": [],
        "warnings": [],
    }


def _exit(status, return_code=UNSET, signal_id=UNSET, signal_name=""):
    return {"status": status, "return_code": return_code, "signal": {"id": signal_id, "name": signal_name}}


@pytest.mark.parametrize("version", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_v0040_running_job(version):
    info = V0040Adapter(version).parse_job(_v40_job())
    assert info.job_id == 4242 and info.state == "RUNNING" and not info.terminal
    assert info.node_list == "gpu[01-02]" and info.partition == "gpu"
    assert info.start_time == datetime.fromtimestamp(T0, tz=UTC)
    assert info.end_time is None and info.exit is None and info.reason is None


def test_v0040_pending_job_keeps_reason_and_drops_expected_start():
    body = _v40_job(job_state=["PENDING"], state_reason="Priority", nodes="", start_time=_n(T0 + 600))
    info = V0040Adapter().parse_job(body)
    assert info.state == "PENDING" and info.reason == "Priority"
    assert info.start_time is None and info.node_list is None and info.exit is None


def test_v0040_completed_job():
    body = _v40_job(job_state=["COMPLETED"], end_time=_n(T0 + 30), exit_code=_exit(["SUCCESS"], _n(0)))
    info = V0040Adapter("v0.0.42").parse_job(body)
    assert info.state == "COMPLETED" and info.terminal
    assert info.exit == ExitStatus(return_code=0) and info.exit.ok
    assert info.end_time == datetime.fromtimestamp(T0 + 30, tz=UTC)


def test_v0040_failed_job_with_return_code_3():
    body = _v40_job(
        job_state=["FAILED"],
        state_reason="NonZeroExitCode",
        end_time=_n(T0 + 5),
        exit_code=_exit(["ERROR"], _n(3)),
    )
    info = V0040Adapter("v0.0.41").parse_job(body)
    assert info.state == "FAILED" and info.reason == "NonZeroExitCode"
    assert info.exit == ExitStatus(return_code=3, signal=None)


def test_v0040_signalled_job():
    exit_code = _exit(["SIGNALED"], UNSET, _n(9), "KILL")
    info = V0040Adapter().parse_job(_v40_job(job_state=["CANCELLED"], exit_code=exit_code))
    assert info.state == "CANCELLED"
    assert info.exit == ExitStatus(return_code=None, signal=9) and info.exit.signal_name == "SIGKILL"


def test_v0040_state_flags():
    completing = V0040Adapter().parse_job(_v40_job(job_state=["CANCELLED", "COMPLETING"]))
    assert completing.state == "COMPLETING" and completing.state_flags == ("CANCELLED",)
    assert not completing.terminal
    requeued = V0040Adapter().parse_job(_v40_job(job_state=["PENDING", "REQUEUED"], nodes=""))
    assert requeued.state == "PENDING" and requeued.state_flags == ("REQUEUED",)
    oom = V0040Adapter().parse_job(_v40_job(job_state=["OUT_OF_MEMORY"], exit_code=_exit(["ERROR"], _n(137))))
    assert oom.state == "OUT_OF_MEMORY" and oom.terminal and oom.exit.return_code == 137


def test_v0040_complex_mode_numbers_and_string_state():
    # slurmrestd's complex mode writes plain numbers, "Infinity" and null instead of {set, infinite, number}.
    body = _v40_job(
        job_state="TIMEOUT", start_time=T0, end_time=T0 + 60, time_limit="Infinity", exit_code=None
    )
    info = V0040Adapter().parse_job(body)
    assert info.state == "TIMEOUT" and info.terminal
    assert info.start_time == datetime.fromtimestamp(T0, tz=UTC)
    assert info.end_time == datetime.fromtimestamp(T0 + 60, tz=UTC)
    assert info.exit is None


def test_v0040_submit_body():
    body = V0040Adapter("v0.0.42").submit_body(REQUEST)
    assert "script" not in body  # deprecated at the top level since v0.0.41
    assert body["job"] == {
        "script": REQUEST.script,
        "name": "run 7",
        "current_working_directory": "/runs/7",
        "environment": ["PATH=/opt/or1/bin:/usr/bin:/bin", "OR1_RUN=7"],
        "nodes": "2",
        "partition": "gpu",
        "account": "rl",
        "qos": "normal",
        "tres_per_node": "gres/gpu:4",
        "cpus_per_task": 16,
        "memory_per_node": {"set": True, "infinite": False, "number": 64000},
        "time_limit": {"set": True, "infinite": False, "number": 90},
        "constraints": "a100",
        "standard_output": "/runs/7/slurm-%j.out",
        "standard_error": "/runs/7/slurm-%j.err",
    }


def test_v0040_submit_answer():
    body = {
        "job_id": 4242,
        "step_id": "batch",
        "job_submit_user_msg": "",
        "meta": META_41,
        "errors": [],
        "warnings": [],
    }
    adapter = V0040Adapter("v0.0.41")
    assert adapter.parse_submit(body) == 4242
    assert adapter.errors(body) == [] and adapter.warnings(body) == []


def test_v0040_submit_rejection_is_classified():
    body = {
        "meta": META_41,
        "errors": [
            {
                "description": "Batch job submission failed",
                "error_number": 2000,
                "error": "Invalid partition name specified",
                "source": "slurm_submit_batch_job()",
            }
        ],
        "warnings": [],
    }
    adapter = V0040Adapter("v0.0.41")
    assert adapter.parse_submit(body) is None
    error = classify("submit", 500, adapter.errors(body), "slurmci")
    assert isinstance(error, SlurmSubmitRejected)
    assert "Invalid partition name specified (error 2000)" in str(error)
    assert error.error_numbers == {2000} and error.status_code == 500


@pytest.mark.parametrize(
    ("ping", "ok", "mode"),
    [
        ({"hostname": "ctl1", "pinged": "UP", "latency": 153, "mode": "primary"}, True, "primary"),
        ({"hostname": "ctl1", "pinged": "DOWN", "latency": 0, "mode": "primary"}, False, "primary"),
        (
            {"hostname": "ctl1", "pinged": "UP", "responding": True, "latency": 120, "primary": True},
            True,
            "primary",
        ),
        ({"hostname": "ctl2", "responding": False, "latency": 0, "primary": False}, False, "backup"),
    ],
)
def test_v0040_ping(ping, ok, mode):
    result = V0040Adapter("v0.0.42").parse_ping({"pings": [ping], "meta": META_41, "errors": []})
    assert result.ok is ok and result.controllers[0].mode == mode and result.slurm_release == "24.05.4"


def test_v0042_signal_answer_lists_per_job_errors():
    body = {
        "status": [
            {
                "error": {
                    "string": "Invalid job id specified",
                    "code": 2017,
                    "message": "Unable to find JobId=99",
                },
                "step_id": "99",
                "job_id": _n(99),
                "federation": {"sibling": ""},
            }
        ],
        "meta": META_41,
        "errors": [],
        "warnings": [],
    }
    errors = V0040Adapter("v0.0.42").errors(body)
    assert errors == [
        {
            "error": "Invalid job id specified",
            "error_number": 2017,
            "description": "Unable to find JobId=99",
            "source": "signal JobId=99",
        }
    ]
    assert isinstance(classify("cancel job 99", 200, errors, "slurmci"), SlurmJobNotFound)
    ok = {
        "status": [{"error": {"string": "No error", "code": 0, "message": ""}, "job_id": _n(7)}],
        "errors": [],
    }
    assert V0040Adapter("v0.0.42").errors(ok) == []


# ---------------------------------------------------------------- error classification


def test_v0038_bad_token_is_an_auth_error_with_slurms_text():
    errors = V0038Adapter().errors(
        {
            "errors": [
                {
                    "description": "slurmctld config is unable to load",
                    "error_number": -1,
                    "error": "Unspecified error",
                    "source": "slurm_load_ctl_conf",
                }
            ]
        }
    )
    error = classify("ping", 500, errors, "slurmci")
    assert isinstance(error, SlurmAuthError)
    assert "slurmci" in str(error) and "slurmctld config is unable to load" in str(error)


@pytest.mark.parametrize(
    ("status", "errors", "cls"),
    [
        (401, [], SlurmAuthError),
        (500, [{"error_number": 6000, "error": "Invalid authentication credential"}], SlurmAuthError),
        (500, [{"error_number": 1007, "error": "Protocol authentication error"}], SlurmAuthError),
        (
            500,
            [{"error_number": 1001, "error": "Unable to contact slurm controller (connect failure)"}],
            SlurmUnavailable,
        ),
        (503, [], SlurmUnavailable),
        (500, [{"error_number": 2017, "error": "Invalid job id specified"}], SlurmJobNotFound),
        (500, [{"error_number": 2020, "error": "Job can not be altered now, try again later"}], SlurmError),
    ],
)
def test_classify(status, errors, cls):
    error = classify("job 1", status, errors, "slurmci", "Authentication failure" if status == 401 else "")
    assert type(error) is cls
    if errors:
        assert errors[0]["error"] in str(error)
