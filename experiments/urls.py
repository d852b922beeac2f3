from django.urls import path

from experiments.views import dashboards
from experiments.views.editor import experiment_duplicate, experiment_new
from experiments.views.experiments import experiment_detail
from experiments.views.home import home
from experiments.views.runs import (
    experiment_launch,
    run_cancel,
    run_detail,
    run_events,
    run_list,
    run_list_table,
    run_log,
    run_resume,
    run_status,
)

urlpatterns = [
    path("", home, name="home"),
    path("experiments/<int:pk>/", experiment_detail, name="experiment-detail"),
    path("runs/<int:pk>/", run_detail, name="run-detail"),
    path("runs/<int:pk>/status/", run_status, name="run-status"),
    path("projects/<int:project_pk>/experiments/new/", experiment_new, name="experiment-new"),
    path("experiments/<int:pk>/duplicate/", experiment_duplicate, name="experiment-duplicate"),
    path("experiments/<int:pk>/launch/", experiment_launch, name="experiment-launch"),
    path("runs/", run_list, name="run-list"),
    path("runs/table/", run_list_table, name="run-list-table"),
    path("runs/<int:pk>/events/", run_events, name="run-events"),
    path("runs/<int:pk>/log/", run_log, name="run-log"),
    path("runs/<int:pk>/cancel/", run_cancel, name="run-cancel"),
    path("runs/<int:pk>/resume/", run_resume, name="run-resume"),
]

# Dashboards: live charts, alerts and rollouts of a run; the comparison dashboard and its saved views.
urlpatterns += [
    path("runs/<int:pk>/charts/", dashboards.run_charts, name="run-charts"),
    path("runs/<int:pk>/alerts/", dashboards.run_alerts, name="run-alerts"),
    path("runs/<int:pk>/rollouts/", dashboards.run_rollouts, name="run-rollouts"),
    path("compare/", dashboards.compare, name="compare"),
    path("compare/data/", dashboards.compare_data, name="compare-data"),
    path("compare/save/", dashboards.compare_save, name="compare-save"),
    path("compare/views/<int:pk>/", dashboards.saved_view, name="compare-view"),
]

# Datasets: custom eval sets uploaded in the browser and registered for the team.
from experiments.views.datasets import dataset_upload  # noqa: E402

urlpatterns += [path("datasets/upload/", dataset_upload, name="dataset-upload")]

# Leaderboard: evaluations per benchmark across runs and checkpoints, with the paper's reference rows.
from experiments.views.leaderboard import leaderboard  # noqa: E402

urlpatterns += [path("leaderboard/", leaderboard, name="leaderboard")]

# Evaluation and difficulty jobs: the Evaluate form, a dataset source's page, each job's page.
from experiments.views import jobs  # noqa: E402

urlpatterns += [
    path("evaluations/new/", jobs.evaluation_new, name="evaluation-new"),
    path("evaluations/<int:pk>/", jobs.evaluation_job, name="evaluation-job"),
    path("evaluations/<int:pk>/cancel/", jobs.evaluation_job_cancel, name="evaluation-job-cancel"),
    path("datasets/<int:pk>/", jobs.dataset_detail, name="dataset-detail"),
    path("datasets/difficulty/<int:pk>/", jobs.difficulty_job, name="difficulty-job"),
    path("datasets/difficulty/<int:pk>/cancel/", jobs.difficulty_job_cancel, name="difficulty-job-cancel"),
    path("datasets/difficulty/<int:pk>/create-source/", jobs.difficulty_create_source, name="difficulty-create-source"),
]
