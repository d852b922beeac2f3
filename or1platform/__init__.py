"""The OR1 Lab Django project (named ``or1platform``: a package called ``platform`` would shadow the standard
library's ``platform`` module, which uuid, Celery and torch import).

The Celery app is imported here so that ``@shared_task`` functions bind to it in every process that loads
Django, the web server included.
"""

from or1platform.celery import app as celery_app

__all__ = ("celery_app",)
