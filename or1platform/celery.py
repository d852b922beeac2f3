"""The Celery app: configuration comes from Django settings under the ``CELERY_`` prefix.

Tasks are found in each installed app's ``tasks.py``. The long-job settings (late acks, prefetch 1, reject on
worker loss, a broker visibility timeout above the longest task) live in ``or1platform/settings.py`` with the
rest of the configuration.

Run a worker:  celery -A or1platform worker --pool=prefork --concurrency=1 -Q default
Run beat:      celery -A or1platform beat
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "or1platform.settings")

app = Celery("or1platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
