from django.apps import AppConfig


class WorkersConfig(AppConfig):
    """Celery tasks and launchers; its ``tasks.py`` is found by the Celery app's autodiscovery."""

    name = "workers"
    verbose_name = "Workers"
