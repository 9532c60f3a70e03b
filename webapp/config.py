"""Read the configuration from the environment."""

import os
import secrets
from pathlib import Path


def _flag(name: str, default: bool) -> bool:
    """Return an environment variable read as a boolean."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def from_environment(instance_path: str) -> dict:
    """Build the Flask configuration from environment variables."""
    instance = Path(instance_path)
    secret = os.environ.get("SECRET_KEY") or _persistent_secret(instance)
    return {
        "SECRET_KEY": secret,
        "SQLALCHEMY_DATABASE_URI": os.environ.get(
            "DATABASE_URL", f"sqlite:///{instance / 'scheduler.db'}"
        ),
        "USE_CELERY": _flag("USE_CELERY", False),
        # The embedded scheduler runs only where this is true and the lock is held.
        "SCHEDULER_ENABLED": _flag("SCHEDULER_ENABLED", True),
        "SCHEDULER_THREADS": int(os.environ.get("SCHEDULER_THREADS", "10")),
        # How often a process checks the database for schedule changes made elsewhere.
        "SCHEDULER_SYNC_SECONDS": float(os.environ.get("SCHEDULER_SYNC_SECONDS", "1")),
        # A run late by less than this is fired normally; beyond it the misfire policy decides.
        "SCHEDULER_MISFIRE_GRACE_SECONDS": float(os.environ.get("SCHEDULER_MISFIRE_GRACE_SECONDS", "30")),
        "SCHEDULER_LOCK_FILE": os.environ.get(
        "SCHEDULER_LOCK_FILE", str(instance / "scheduler.lock")
        ),
        "ARTIFACT_DIR": os.environ.get("ARTIFACT_DIR", str(instance / "artifacts")),
        "ETL_IMPORT_DIR": os.environ.get("ETL_IMPORT_DIR", str(instance / "imports")),
        "ETL_DATABASE_URL": os.environ.get(
            "ETL_DATABASE_URL", f"sqlite:///{instance / 'etl.db'}"
        ),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "CELERY_RESULT_BACKEND": os.environ.get(
            "CELERY_RESULT_BACKEND", os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
        ),
        # The Redis that holds the beat's schedule (by default the broker's).
        "SCHEDULE_REDIS_URL": os.environ.get(
            "SCHEDULE_REDIS_URL", os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
        ),
        "SCHEDULE_REDIS_PREFIX": os.environ.get("SCHEDULE_REDIS_PREFIX", "jobsched"),
        "MAX_CONTENT_LENGTH": int(os.environ.get("MAX_CONTENT_LENGTH", str(256 * 1024))),
        "JOBS_PER_PAGE": int(os.environ.get("JOBS_PER_PAGE", "25")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "WTF_CSRF_TIME_LIMIT": None,
    }


def _persistent_secret(instance: Path) -> str:
    """Return a random secret kept in the instance folder, so sessions survive restarts."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    path.write_text(secret)
    path.chmod(0o600)
    return secret
