"""Choose between a full page and an HTMX partial, and say who may change things."""

from __future__ import annotations

import json
from functools import wraps
from typing import Any

from flask import abort, get_flashed_messages, make_response, render_template
from flask_login import current_user

from ..extensions import htmx


def wants_partial() -> bool:
    """Return whether to answer with a fragment: an HTMX request, not boosted, not a restore."""
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def render(page: str, partial: str | None = None, *, http_status: int = 200, **context: Any):
    """Render the partial for an HTMX request, the full page otherwise; vary on HX-Request."""
    template = partial if partial and wants_partial() else page
    response = make_response(render_template(template, **context), http_status)
    response.vary.add("HX-Request")
    return response


def fragment(template: str, *, status: int = 200, trigger: str | None = None,
             messages: bool = True, **context: Any):
    """Render an HTMX fragment plus the pending flash messages (out of band) and an event."""
    body = render_template(template, **context) if template else ""
    if messages:
        body += render_template("_messages.html", oob=True,
                                messages=get_flashed_messages(with_categories=True))
    response = make_response(body, status)
    if trigger:
        response.headers["HX-Trigger"] = json.dumps({trigger: True})
    response.vary.add("HX-Request")
    return response


def admin_required(view):
    """Refuse the view with 403 to anyone who is not an admin."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated or not current_user.can_edit:
            abort(403, description="Your account can view jobs but not change them.")
        return view(*args, **kwargs)

    return wrapped
