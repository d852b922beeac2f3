"""ASGI entry point (uvicorn or1platform.asgi:application), for streaming responses."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "or1platform.settings")

application = get_asgi_application()
