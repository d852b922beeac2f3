"""WSGI entry point (gunicorn or1platform.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "or1platform.settings")

application = get_wsgi_application()
