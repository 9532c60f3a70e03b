"""Log in and out."""

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from ..extensions import db, login_manager
from ..models import User
from ..models.clock import utcnow

bp = Blueprint("auth", __name__, url_prefix="/auth")


@login_manager.user_loader
def load_user(user_id: str):
    """Return the logged-in user for the session, or None."""
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


def _safe_next(target: str | None) -> str:
    """Return a local redirect target, never another site."""
    if target and not urlsplit(target).netloc and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("jobs.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and log a user in."""
    if current_user.is_authenticated:
        return redirect(url_for("jobs.index"))
    error = None
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        user = db.session.scalar(select(User).where(User.username == name))
        if user is None or not user.check_password(request.form.get("password", "")):
            error = "Wrong user name or password."
        else:
            login_user(user, remember=bool(request.form.get("remember")))
            user.last_login_at = utcnow()
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    """Log the current user out."""
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
