"""The OpenAPI schema: drf-spectacular's, with every error an operation can answer described.

Each operation documents 400, 401, 403 and 404 with the one error body (``errors.ErrorSerializer``); an
action that can meet a run or sweep in the wrong state (cancel, resume) documents 409 too, by listing itself
in its view's ``conflict_actions``. The schema is therefore complete enough for a client generator, and for the
schemathesis fuzz test, which fails on any status code or body the schema does not describe.
"""

from __future__ import annotations

from drf_spectacular import openapi

from experiments.api.errors import ErrorSerializer

ERRORS = {
    "400": "The request is malformed or a field is invalid; `errors` names each field by its path.",
    "401": "No credentials, or an unknown, revoked or expired API token.",
    "403": "Known to you, but your role (or a read-only token) does not allow this.",
    "404": "No such object, or one you may not see (existence is never confirmed to outsiders).",
}
CONFLICT = (
    "The object's state does not allow this (e.g. the run has already finished, or has no checkpoint to resume from)."
)


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = dict(ERRORS)
        if getattr(self.view, "action", None) in getattr(self.view, "conflict_actions", ()):
            codes["409"] = CONFLICT
        for code, description in codes.items():
            if code not in responses:
                body = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                body["description"] = description
                responses[code] = body
        return responses
