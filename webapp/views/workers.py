"""Workers: the state of the scheduler and whatever executes the runs."""

from flask import Blueprint

from ..services.scheduler import backend
from .rendering import render

bp = Blueprint("workers", __name__, url_prefix="/workers")


@bp.get("/")
def index():
    """Show the scheduler's state, refreshed in place every few seconds."""
    return render("workers/index.html", "workers/_status.html", status=backend().status())
