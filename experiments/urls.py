from django.urls import path

from experiments.views.experiments import experiment_detail
from experiments.views.home import home
from experiments.views.runs import run_detail, run_status

urlpatterns = [
    path("", home, name="home"),
    path("experiments/<int:pk>/", experiment_detail, name="experiment-detail"),
    path("runs/<int:pk>/", run_detail, name="run-detail"),
    path("runs/<int:pk>/status/", run_status, name="run-status"),
]
