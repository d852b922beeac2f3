"""What an evaluation or difficulty job runs and what its outputs mean, whichever launcher ran it.

A job is one `or1-train` command on the job's frozen spec, in a directory of its own:

    evaluation   or1-train eval DIR/spec.yaml --model MODEL --out DIR/results.json
    difficulty   or1-train estimate-difficulty DIR/spec.yaml --data SOURCE --format F --n N
                 --out DIR/passes.jsonl --filtered DIR/filtered.jsonl --report DIR/report.json ...

A local worker runs it as its own subprocess (``workers/eval_jobs.py``); a Slurm cluster as a batch job whose
script the run launcher renders (``workers/slurm_eval_jobs.py``). Either way everything it prints goes to
``DIR/job.log``, and when it has exited 0 ``store`` reads what it wrote into the job's rows (EvaluationResult
rows for an evaluation, the histogram and the filtered file for a difficulty job) and ends the job succeeded.
A job that failed ends with ``failure``: the CLI's own one-line error from its log.
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments.models import DifficultyJob, EvaluationJob, EvaluationResult, JobStatus

SPEC_FILE, LOG_FILE = "spec.yaml", "job.log"
RESULTS_FILE, REPORT_FILE = "results.json", "report.json"
PASSES_FILE, FILTERED_FILE = "passes.jsonl", "filtered.jsonl"
#: the job models by kind: how a task message or a Slurm job name refers to a job
MODELS = {EvaluationJob.kind: EvaluationJob, DifficultyJob.kind: DifficultyJob}


def dir_name(job) -> str:
    """The job's directory under its launcher's root: ``eval-<id>`` or ``difficulty-<id>``."""
    return f"eval-{job.pk}" if isinstance(job, EvaluationJob) else f"difficulty-{job.pk}"


def cli_args(job, work: str) -> list[str]:
    """The `or1-train` arguments of ``job`` with its files in ``work``."""
    spec = f"{work}/{SPEC_FILE}"
    if isinstance(job, EvaluationJob):
        return ["eval", spec, "--model", job.model_path, "--out", f"{work}/{RESULTS_FILE}"]
    args = ["estimate-difficulty", spec, "--data", job.source.path, "--format", job.source.format,
            "--n", str(job.n), "--out", f"{work}/{PASSES_FILE}", "--filtered", f"{work}/{FILTERED_FILE}",
            "--model-name", job.model_name, "--temperature", str(job.temperature), "--report", f"{work}/{REPORT_FILE}"]
    if job.max_tokens:
        args += ["--max-tokens", str(job.max_tokens)]
    if job.limit:
        args += ["--limit", str(job.limit)]
    return args


def failure(work: Path, returncode: int | None, where: str = "") -> str:
    """The CLI's own one-line error (``error: ...``) from the job's log, else its last line; ``where`` says
    what ran it (a Slurm job, on which node)."""
    try:
        lines = (work / LOG_FILE).read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("error: ")]
    last = errors[-1] if errors else (lines[-1] if lines else "no output")
    code = f"or1-train exited {returncode}" if returncode is not None else "the job failed"
    return f"{code}: {last}" + (f" ({where})" if where else "")


def store(job, work: Path) -> None:
    """Read what the job's command wrote into ``work`` into the database and end the job succeeded."""
    if isinstance(job, EvaluationJob):
        _store_results(job, work / RESULTS_FILE)
    else:
        _store_report(job, work / REPORT_FILE)


def _store_results(job: EvaluationJob, out: Path) -> None:
    checkpoint = job.checkpoint
    rows = [
        EvaluationResult(
            job=job, run_id=checkpoint.run_id if checkpoint else None, checkpoint=checkpoint,
            model_path=job.model_path, benchmark=r["name"], k=r["k"], num_samples=r["num_samples"],
            avg_at_k=r["avg_at_k"], pass_at_k=r["pass_at_k"], temperature=job.temperature,
            step=checkpoint.step if checkpoint else None,
        )
        for r in json.loads(out.read_text())
    ]
    EvaluationResult.objects.filter(job=job).delete()  # a redelivered job's earlier attempt
    EvaluationResult.objects.bulk_create(rows)
    job.finish(JobStatus.SUCCEEDED, "; ".join(f"{r.benchmark}: avg@{r.k} {r.avg_at_k:.3f}" for r in rows))


def _store_report(job: DifficultyJob, report_file: Path) -> None:
    report = json.loads(report_file.read_text())
    job.finish(
        JobStatus.SUCCEEDED, f"{report['kept']} of {report['num_problems']} problems solved 1..{job.n - 1} times",
        histogram=report["histogram"], num_problems=report["num_problems"], kept=report["kept"],
        out_path=report["out"], filtered_path=report["filtered"],
    )
