"""Top-level URLs: the pages of the experiments app, the trainer's ingestion API, Django's login/logout, the
admin, and the liveness and readiness checks (``or1platform/health.py``)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from or1platform.health import healthz, readyz

urlpatterns = [
    path("", include("experiments.urls")),
    path("api/ingest/", include("experiments.api.ingest")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/", include("experiments.api.urls")),
    path("", include("experiments.pages_urls")),
]
