# Written for experiments/models/retention.py (issue 10: checkpoint retention per project).

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("experiments", "0003_alerts_saved_views"),
    ]

    operations = [
        migrations.CreateModel(
            name="RetentionPolicy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "keep_last",
                    models.PositiveSmallIntegerField(
                        default=3,
                        help_text="The newest K checkpoints of every run are kept (at least 1: the one a resume starts from).",
                        validators=[django.core.validators.MinValueValidator(1)],
                    ),
                ),
                (
                    "keep_best",
                    models.PositiveSmallIntegerField(
                        default=1,
                        help_text="The N best checkpoints by the metric are kept as well (at least 1).",
                        validators=[django.core.validators.MinValueValidator(1)],
                    ),
                ),
                (
                    "best_metric",
                    models.CharField(
                        blank=True,
                        help_text="Metric that ranks checkpoints, e.g. val/aime24/avg@8. Blank: the mean of every val/<set>/avg@<k> logged at the checkpoint's step.",
                        max_length=200,
                    ),
                ),
                ("higher_is_better", models.BooleanField(default=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "project",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="retention_policy",
                        to="experiments.project",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "retention policies",
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("keep_last__gte", 1)), name="retention_keeps_newest"),
                    models.CheckConstraint(condition=models.Q(("keep_best__gte", 1)), name="retention_keeps_best"),
                ],
            },
        ),
    ]
