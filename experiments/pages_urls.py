"""Pages of the API and sharing features: API tokens, sweeps, shares and shared links, the checkpoint
registry and the audit log (included by ``or1platform/urls.py``)."""

from django.urls import path

from experiments.views import audit, registry, sharing, sweeps, tokens

urlpatterns = [
    path("account/tokens/", tokens.token_list, name="api-tokens"),
    path("account/tokens/<int:pk>/revoke/", tokens.token_revoke, name="api-token-revoke"),
    path("sweeps/", sweeps.sweep_list, name="sweep-list"),
    path("experiments/<int:pk>/sweeps/new/", sweeps.sweep_new, name="sweep-new"),
    path("sweeps/<int:pk>/", sweeps.sweep_detail, name="sweep-detail"),
    path("sweeps/<int:pk>/cancel/", sweeps.sweep_cancel, name="sweep-cancel"),
    path("shares/", sharing.share_list, name="share-list"),
    path("shares/new/", sharing.share_new, name="share-new"),
    path("shares/<int:pk>/revoke/", sharing.share_revoke, name="share-revoke"),
    path("shares/<int:pk>/", sharing.shared_with_team, name="shared-with-team"),
    path("shared/<str:token>/", sharing.shared_link, name="shared-link"),
    path("shared/<str:token>/checkpoints/<int:checkpoint_pk>/<path:name>", sharing.shared_link_file,
         name="shared-link-file"),
    path("projects/<int:project_pk>/checkpoints/", registry.checkpoint_registry, name="checkpoint-registry"),
    path("checkpoints/<int:pk>/", registry.checkpoint_detail, name="checkpoint-detail"),
    path("checkpoints/<int:pk>/files/<path:name>", registry.checkpoint_file, name="checkpoint-file"),
    path("teams/<int:team_pk>/audit/", audit.audit_log, name="audit-log"),
]
