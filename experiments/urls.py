from django.urls import path

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
]
