"""Jobs: the list, the form, the detail page and the in-place row actions."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from tasks import registry

from ..extensions import db
from ..models import ACTIVE_STATUSES, MISFIRE_POLICIES, JobRun, ScheduleRevision
from ..schedules import ScheduleError, timezones
from ..services import jobs as service
from ..services import jobspec, queries
from .rendering import admin_required, fragment, render, wants_partial

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def _change_token() -> str:
    """Return a cheap fingerprint of everything the jobs table shows that can change."""
    revision = db.session.scalar(select(ScheduleRevision.value)) or 0
    # Each part is an index lookup, so the check stays cheap with millions of runs.
    last_run = db.session.scalar(select(func.max(JobRun.id)))
    finished = db.session.scalar(select(func.max(JobRun.finished_at)))
    active = db.session.scalar(select(func.count()).select_from(JobRun).where(
        JobRun.status.in_(ACTIVE_STATUSES)))
    return f"{revision}.{last_run or 0}.{active}.{finished.timestamp() if finished else 0}"


def _table_context(filters: queries.JobFilters) -> dict:
    """Return what the jobs table needs to render one page."""
    pagination = queries.list_jobs(filters, current_app.config["JOBS_PER_PAGE"])
    running = queries.running_job_ids([job.id for job in pagination.items])
    return {
        "pagination": pagination,
        "jobs": pagination.items,
        "running": running,
        "filters": filters,
        "token": _change_token(),
    }


def _choices() -> dict:
    """Return the option lists of the filters and the form."""
    return {
        "task_types": registry.all_types(),
        "queues": registry.QUEUES,
        "states": queries.JOB_STATES,
        "misfire_policies": MISFIRE_POLICIES,
    }


@bp.get("/")
def index():
    """List the jobs, filtered and paged; a refresh with an unchanged token answers 204."""
    filters = queries.JobFilters.from_args(request.args)
    since = request.args.get("since")
    if since and wants_partial() and since == _change_token():
        return "", 204
    return render("jobs/index.html", "jobs/_table.html", **_table_context(filters), **_choices())


@bp.get("/<int:job_id>")
def detail(job_id: int):
    """Show a job's settings, its next runs and its recent runs."""
    job = service.get(job_id)
    page = queries.list_runs(job_id=job.id, status=request.args.get("status", ""),
                             page=queries.page_arg(request.args), per_page=20)
    status = service.status(job.id)
    return render("jobs/detail.html", "runs/_table.html", job=job, status=status,
                  pagination=page, runs=page.items, run_filters={"status": request.args.get("status", "")},
                  task=registry.get(job.task), list_endpoint="jobs.detail",
                  list_args={"job_id": job.id}, **_choices())


def _form_page(values: dict, errors: dict, job=None, status: int = 200):
    """Render the create or edit form with its values and errors."""
    task = registry.get(values.get("task", ""))
    return render("jobs/form.html", values=values, errors=errors, job=job, task=task,
                  timezones=timezones(), http_status=status, **_choices())


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def create():
    """Show the new-job form and create the job."""
    if request.method == "POST":
        try:
            job = service.add(request.form, current_user.username)
        except jobspec.JobErrors as exc:
            return _form_page(request.form.to_dict(), exc.errors, status=422)
        flash(f"Job '{job.name}' created.", "success")
        return redirect(url_for("jobs.detail", job_id=job.id), code=303)
    task_name = request.args.get("task") or registry.all_types()[0].name
    task = registry.get(task_name)
    values = {"task": task_name, "queue": task.queue if task else "", "schedule_kind": "interval",
              "every": "15", "every_unit": "minutes", "timezone": "UTC", "max_concurrent": "1",
              "misfire_policy": "run_once", "enabled": "on"}
    return _form_page(values, {})


@bp.route("/<int:job_id>/edit", methods=["GET", "POST"])
@admin_required
def edit(job_id: int):
    """Show the edit form of a job and save it."""
    job = service.get(job_id)
    if request.method == "POST":
        try:
            service.update_job(job.id, request.form, current_user.username)
        except jobspec.JobErrors as exc:
            db.session.rollback()
            return _form_page(request.form.to_dict(), exc.errors, job=job, status=422)
        flash(f"Job '{job.name}' saved.", "success")
        return redirect(url_for("jobs.detail", job_id=job.id), code=303)
    return _form_page(jobspec.form_values(job), {}, job=job)


@bp.get("/params")
def params():
    """Return the parameter fields of a task type, and its default queue out of band."""
    task = registry.get(request.args.get("task", ""))
    values = {k: v for k, v in request.args.items()}
    if task:
        values["queue"] = task.queue
    return render("jobs/_params.html", "jobs/_params.html", task=task, values=values,
                  errors={}, queues=registry.QUEUES, oob_queue=True)


@bp.get("/preview")
def preview():
    """Check the schedule fields as they are typed and show the next five runs in words."""
    try:
        schedule, times = service.preview(request.args)
    except ScheduleError as exc:
        return render("jobs/_preview.html", "jobs/_preview.html", error=exc.message,
                      field=exc.field, schedule=None, times=[])
    return render("jobs/_preview.html", "jobs/_preview.html", error=None, field=None,
                  schedule=schedule, times=times)


@bp.get("/check-name")
def check_name():
    """Say whether a job name is usable, as it is typed."""
    name = request.args.get("name", "").strip()
    job_id = request.args.get("job_id", type=int)
    error = None
    if not name:
        error = "Give the job a name."
    elif len(name) > jobspec.NAME_MAX:
        error = f"At most {jobspec.NAME_MAX} characters."
    else:
        try:
            service.check_name_free(name, job_id)
        except jobspec.JobErrors as exc:
            error = exc.errors["name"]
    return render("jobs/_field_error.html", "jobs/_field_error.html", error=error, field="name")


def _back():
    """Redirect a form post back where it came from (same site only), or to the list."""
    target = request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return redirect(target, code=303)
    return redirect(url_for("jobs.index"), code=303)


def _row_result(job, message: str, category: str = "success"):
    """Answer a row action: the row and a message for HTMX, a redirect back otherwise."""
    flash(message, category)
    if wants_partial():
        return fragment("jobs/_row.html", job=job, running=queries.running_job_ids([job.id]))
    return _back()


@bp.post("/<int:job_id>/pause")
@admin_required
def pause(job_id: int):
    """Pause a job at once."""
    job = service.pause(job_id, current_user.username)
    return _row_result(job, f"Paused '{job.name}'.")


@bp.post("/<int:job_id>/resume")
@admin_required
def resume(job_id: int):
    """Resume a job from its next instant after now."""
    job = service.resume(job_id, current_user.username)
    when = job.next_run.strftime("%Y-%m-%d %H:%M:%S UTC") if job.next_run else "no further run"
    return _row_result(job, f"Resumed '{job.name}': next run {when}.")


@bp.post("/<int:job_id>/run")
@admin_required
def run(job_id: int):
    """Run a job now, outside its schedule."""
    run = service.run_now(job_id, current_user.username)
    job = service.get(job_id)
    if run.status == "skipped":
        return _row_result(job, f"Not started: {run.error}", "warning")
    return _row_result(job, f"Started '{job.name}' (run #{run.id}).")


@bp.route("/<int:job_id>/delete", methods=["GET", "POST"])
@admin_required
def delete(job_id: int):
    """Confirm (without JavaScript) and delete a job; its run history is kept."""
    if request.method == "GET":
        return render("jobs/confirm_delete.html", job=service.get(job_id))
    name = service.remove(job_id, current_user.username)
    flash(f"Deleted '{name}'. Its run history is kept.", "success")
    if wants_partial():
        return fragment("", trigger="jobsChanged")
    return redirect(url_for("jobs.index"), code=303)
