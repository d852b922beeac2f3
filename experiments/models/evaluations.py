"""Benchmark results: avg@k and pass@k, always stored with k, the sample count and the temperature.

Results belong to a run (evaluated during training), to a checkpoint (evaluated afterwards) or to both, or
to an evaluation job of a model that is no checkpoint (an HF model path, named in ``model_path``); the numbers
are only comparable together with k and the number of samples, so neither is optional.
"""

from __future__ import annotations

from django.db import models

from experiments.models.checkpoints import Checkpoint
from experiments.models.runs import Run


class EvaluationResult(models.Model):
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="evaluations")
    checkpoint = models.ForeignKey(
        Checkpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="evaluations"
    )
    job = models.ForeignKey(
        "experiments.EvaluationJob", null=True, blank=True, on_delete=models.CASCADE, related_name="results"
    )
    model_path = models.CharField(max_length=1000, blank=True, help_text="The model evaluated, for a job's rows.")
    benchmark = models.CharField(max_length=100)
    k = models.PositiveSmallIntegerField(help_text="Samples per problem.")
    num_samples = models.PositiveIntegerField(help_text="Problems x k: the samples behind the numbers.")
    avg_at_k = models.FloatField(help_text="Mean accuracy over all k samples of every problem.")
    pass_at_k = models.FloatField(null=True, blank=True, help_text="Unbiased pass@k (the Codex estimator).")
    temperature = models.FloatField()
    step = models.PositiveIntegerField(null=True, blank=True, help_text="Training step evaluated, if known.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["benchmark", "step", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(run__isnull=False) | models.Q(checkpoint__isnull=False)
                | models.Q(job__isnull=False),
                name="evaluationresult_has_run_checkpoint_or_job",
            )
        ]
        indexes = [models.Index(fields=["run", "benchmark", "step"], name="evalresult_run_bench_step")]

    def __str__(self) -> str:
        return f"{self.benchmark} avg@{self.k}={self.avg_at_k:.3f}"
