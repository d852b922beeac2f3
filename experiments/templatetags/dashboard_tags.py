"""Template tags for the dashboards: a run's open alerts, as a banner on its page and a badge in run lists.

A list view can load every row's open alerts in one query with ``experiments.alerts.with_open_alerts``; the
tags use that prefetch when it is there and ask the database for the one run otherwise.
"""

from __future__ import annotations

from django import template

register = template.Library()


def _open(run) -> list:
    alerts = getattr(run, "open_alerts", None)
    if alerts is None:
        alerts = list(run.alerts.filter(cleared_at__isnull=True).order_by("raised_at"))
    return alerts


@register.simple_tag
def open_alerts(run) -> list:
    return _open(run)


@register.inclusion_tag("experiments/_alert_badge.html")
def alert_badge(run) -> dict:
    return {"run": run, "alerts": _open(run)}
