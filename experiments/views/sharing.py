"""Sharing in the browser: share a run, a checkpoint or a comparison view; list and revoke shares; open what
was shared, as a member of the receiving team or by a signed read-only link (no login).

A link page answers 404 the moment its share is revoked or expires, exactly like a forged token: the share is
looked up on every request (``Share.from_link_token``), nothing is cached.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from experiments import access, registry, sharing
from experiments.models import EvaluationResult, Share, Team
from experiments.runstats import latest_metrics
from experiments.views.registry import checkpoint_download
from experiments.views.tokens import EXPIRY_CHOICES

#: the action's error keys that are form fields under another name
FORM_FIELD = {"shared_with": "team", "expires_at": "expires_in_days"}


class ShareForm(forms.Form):
    audience = forms.ChoiceField(
        choices=[("team", "Another team (read-only)"), ("link", "Anyone with a signed link (read-only)")],
        widget=forms.RadioSelect,
        initial="team",
    )
    team = forms.SlugField(required=False, help_text="The slug of the team to share with.")
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )
    title = forms.CharField(max_length=200, required=False, help_text="For a view: what it shows.")

    def clean(self):
        data = super().clean()
        if data.get("audience") == "team":
            slug = data.get("team") or ""
            data["team_obj"] = Team.objects.filter(slug=slug).first()
            if data["team_obj"] is None:
                self.add_error("team", "there is no team with this slug")
        return data


def _target(request: HttpRequest) -> dict:
    """What the share form is about, from its query string; 404 for anything the user cannot read."""
    params = request.GET
    if params.get("run"):
        run = get_object_or_404(access.readable_runs(request.user).select_related("experiment__project"),
                                pk=_int(params["run"]))
        return {"kind": Share.Kind.RUN, "run": run, "label": f"run {run.pk} of {run.experiment.name}"}
    if params.get("checkpoint"):
        checkpoint = get_object_or_404(
            access.readable_checkpoints(request.user).select_related("run__experiment__project"),
            pk=_int(params["checkpoint"]),
        )
        return {"kind": Share.Kind.CHECKPOINT, "checkpoint": checkpoint,
                "label": f"checkpoint at step {checkpoint.step} of run {checkpoint.run_id}"}
    ids = [_int(part) for part in params.get("runs", "").split(",") if part.strip()]
    runs = list(access.readable_runs(request.user).filter(pk__in=ids).select_related("experiment__project__team"))
    if not ids or len(runs) != len(set(ids)):
        raise Http404("no such runs")
    query = {key: values for key, values in parse_qs(params.get("query", "")).items()}
    return {"kind": Share.Kind.VIEW, "runs": runs, "query": query, "label": f"a view of {len(runs)} run(s)"}


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise Http404("not a number") from None


@login_required
def share_new(request: HttpRequest) -> HttpResponse:
    target = _target(request)
    form = ShareForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        days = data["expires_in_days"]
        audience = {
            "team": data.get("team_obj") if data["audience"] == "team" else None,
            "link": data["audience"] == "link",
            "expires_at": timezone.now() + timedelta(days=days) if days else None,
        }
        try:
            if target["kind"] == Share.Kind.RUN:
                share = sharing.share_run(target["run"], request.user, **audience)
            elif target["kind"] == Share.Kind.CHECKPOINT:
                share = sharing.share_checkpoint(target["checkpoint"], request.user, **audience)
            else:
                share = sharing.share_view(target["runs"], request.user, title=data["title"] or target["label"],
                                           query=target["query"], **audience)
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                form.add_error(FORM_FIELD.get(field, field if field in form.fields else None), problems)
        else:
            messages.success(request, f"Shared {target['label']} with {share.audience}.")
            return redirect("share-list")
    return render(request, "collab/share_new.html", {"form": form, "target": target})


@login_required
def share_list(request: HttpRequest) -> HttpResponse:
    made = sharing.manageable_shares(request.user).select_related("shared_with", "created_by", "team")
    received = access.received_shares(request.user).select_related("team", "created_by")
    rows = [{"share": s, "link": _link(request, s)} for s in made[:500]]
    return render(request, "collab/shares.html", {"made": rows, "received": received[:500]})


def _link(request: HttpRequest, share: Share) -> str:
    return request.build_absolute_uri(reverse("shared-link", args=[share.link_token])) if share.is_link else ""


@login_required
@require_POST
def share_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    share = get_object_or_404(sharing.manageable_shares(request.user), pk=pk)
    sharing.revoke_share(share, request.user)
    messages.success(request, f"Revoked: {share.title} is no longer shared with {share.audience}.")
    return redirect("share-list")


def _shared_context(share: Share, *, file_url) -> dict:
    runs = list(share.covered_runs().select_related("experiment__project__team").order_by("pk"))
    checkpoints = list(registry.with_scores(share.covered_checkpoints()).order_by("run_id", "step"))
    evaluations = EvaluationResult.objects.filter(run__in=runs).order_by("run_id", "benchmark", "step")
    return {
        "share": share,
        "runs": [{"run": run, "metrics": latest_metrics(run)} for run in runs],
        "evaluations": evaluations,
        "checkpoints": [
            {"checkpoint": c, "scores": registry.scores(c), "hf_path": registry.hf_path(c),
             "files": [(f, file_url(c, f["path"])) for f in registry.listed_files(c)],
             "manifest_url": file_url(c, registry.MANIFEST)}
            for c in checkpoints
        ],
    }


def shared_link(request: HttpRequest, token: str) -> HttpResponse:
    """What a signed link shares, read-only, to anyone holding the link."""
    share = Share.from_link_token(token)
    if share is None:
        raise Http404("this link is unknown, revoked or expired")
    context = _shared_context(share, file_url=lambda c, name: reverse("shared-link-file", args=[token, c.pk, name]))
    response = render(request, "collab/shared.html", context | {"via_link": True})
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def shared_link_file(request: HttpRequest, token: str, checkpoint_pk: int, name: str) -> HttpResponse:
    share = Share.from_link_token(token)
    if share is None:
        raise Http404("this link is unknown, revoked or expired")
    checkpoint = get_object_or_404(share.covered_checkpoints(), pk=checkpoint_pk)
    return checkpoint_download(checkpoint, name)


@login_required
def shared_with_team(request: HttpRequest, pk: int) -> HttpResponse:
    """A share made to one of the user's teams, read-only."""
    share = get_object_or_404(access.received_shares(request.user), pk=pk)
    context = _shared_context(share, file_url=lambda c, name: reverse("checkpoint-file", args=[c.pk, name]))
    return render(request, "collab/shared.html", context | {"via_link": False})
