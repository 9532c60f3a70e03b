"""Runs: the history of every job, one run's detail, and its downloadable file."""

from pathlib import Path

from flask import Blueprint, abort, current_app, request, send_file

from ..extensions import db
from ..models import STATUSES, JobRun
from ..services import queries
from .rendering import render

bp = Blueprint("runs", __name__, url_prefix="/runs")


@bp.get("/")
def index():
    """List runs of all jobs, newest first, filtered by status."""
    status = request.args.get("status", "")
    status = status if status in STATUSES else ""
    page = queries.list_runs(status=status, page=queries.page_arg(request.args))
    return render("runs/index.html", "runs/_table.html", pagination=page, runs=page.items,
                  run_filters={"status": status}, statuses=STATUSES,
                  list_endpoint="runs.index", list_args={})


def _get(run_id: int) -> JobRun:
    """Return the run or abort with 404."""
    run = db.session.get(JobRun, run_id)
    if run is None:
        abort(404, description=f"There is no run {run_id}.")
    return run


@bp.get("/<int:run_id>")
def detail(run_id: int):
    """Show one run: its times, result, error and traceback."""
    return render("runs/detail.html", "runs/_detail.html", run=_get(run_id))


@bp.get("/<int:run_id>/artifact")
def artifact(run_id: int):
    """Download the file a run produced."""
    run = _get(run_id)
    if not run.artifact:
        abort(404, description="This run produced no file.")
    root = Path(current_app.config["ARTIFACT_DIR"]).resolve()
    path = Path(run.artifact).resolve()
    if root not in path.parents or not path.is_file():
        abort(404, description="The file of this run is no longer there.")
    return send_file(path, as_attachment=True, download_name=path.name)
