"""Real processes for integration tests: Redis, Celery workers and beats, started and stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support import free_port, wait_for, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
QUEUES = "collect,report,etl,system"


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Stop a process group started by these helpers, by its PID; kill it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


class RedisServer:
    """A private redis-server on a free loopback port, in a temporary folder, keeping nothing."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server (empty) and wait until it answers."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--databases", "64", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.port)
        wait_for(lambda: redis.Redis(port=self.port).ping(), message="redis ping")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server."""
        if self.process is not None:
            stop(self.process, sig)
            self.process = None

    def restart_empty(self) -> None:
        """Kill the server and start a new empty one on the same port."""
        self.stop(signal.SIGKILL)
        self.start()


@dataclass
class CeleryStack:
    """A database, a Redis database number, and the workers and beats running against them."""

    folder: Path
    redis_server: RedisServer | None
    db_number: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        if self.redis_server is None:  # an embedded-mode stack: nothing may talk to a broker
            return "redis://127.0.0.1:1/0"
        return f"{self.redis_server.url}/{self.db_number}"

    @property
    def instance(self) -> Path:
        return self.folder / "instance"

    def env(self, **extra: str) -> dict[str, str]:
        """Return the environment every process of this stack runs with."""
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FLASK_APP": "webapp",
            "INSTANCE_PATH": str(self.instance),
            "SECRET_KEY": "celery-tests",
            "USE_CELERY": "true",
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_RESULT_BACKEND": self.broker_url,
            "BEAT_LEASE_SECONDS": "2",
            "BEAT_HOUSEKEEPING_SECONDS": "1",
            "LOG_LEVEL": "INFO",
            **extra,
        }

    def config(self) -> dict:
        """Return the Flask test configuration of an admin on this stack."""
        return {
            "TESTING": True,
            "SECRET_KEY": "celery-tests",
            "USE_CELERY": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{self.instance / 'scheduler.db'}",
            "CELERY_BROKER_URL": self.broker_url,
            "CELERY_RESULT_BACKEND": self.broker_url,
            "SCHEDULE_REDIS_URL": self.broker_url,
            "ARTIFACT_DIR": str(self.instance / "artifacts"),
            "ETL_IMPORT_DIR": str(self.instance / "imports"),
            "ETL_DATABASE_URL": f"sqlite:///{self.instance / 'etl.db'}",
        }

    def flask(self, *args: str, **extra: str) -> None:
        """Run a flask CLI command against this stack."""
        subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=self.env(**extra),
                       check=True, capture_output=True, text=True)

    def _spawn(self, name: str, args: list[str], **extra: str) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:  # the child keeps its own copy
            process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "tasks", *args],
                                       cwd=ROOT, env=self.env(**extra), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        process.log_path = self.folder / f"{name}.log"
        self.processes.append(process)
        return process

    def start_worker(self, name: str = "w1", queues: str = QUEUES, concurrency: int = 2) -> subprocess.Popen:
        """Start a worker on the queues; wait until it answers a ping."""
        process = self._spawn(name, ["worker", "-Q", queues, "-c", str(concurrency), "-n",
                                     f"{name}@%h", "--without-mingle", "--without-gossip",
                                     "--loglevel", "INFO"])
        assert self.worker_answers(timeout=60), f"worker {name} did not answer a ping"
        return process

    def worker_answers(self, timeout: float = 10) -> bool:
        """Return whether some worker answers a ping within the timeout."""
        from celery import Celery

        probe = Celery(broker=self.broker_url)

        def pong():
            try:
                return probe.control.ping(timeout=0.5)
            except Exception:  # the broker itself may be coming back
                return None

        try:
            wait_for(pong, timeout=timeout, interval=0.2)
            return True
        except AssertionError:
            return False
        finally:
            probe.close()

    def start_beat(self, name: str = "beat1", **extra: str) -> subprocess.Popen:
        """Start a RedisBeatScheduler beat."""
        return self._spawn(name, ["beat", "--scheduler", "tasks.beat:RedisBeatScheduler",
                                  "--loglevel", "INFO"], **extra)

    def stop_all(self) -> None:
        """Stop every process of the stack."""
        for process in self.processes:
            stop(process)
        self.processes.clear()
