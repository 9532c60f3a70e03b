"""The audit log page."""

from flask import Blueprint, request

from ..services import queries
from .rendering import render

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.get("/")
def index():
    """List who changed what, newest first, searchable by job or user name."""
    q = request.args.get("q", "").strip()[:100]
    page = queries.list_audit(q=q, page=queries.page_arg(request.args))
    return render("audit/index.html", "audit/_table.html", pagination=page, events=page.items, q=q)
