"""Benchmark the admin web app under load: 10,000 and 100,000 jobs, embedded and Celery mode.

    PYTHONPATH=. .venv/bin/python bench/admin_bench.py [--quick] [--sizes 10000,100000]
        [--modes embedded,celery] [--duration S] [--concurrency C] [--output FILE]

For each mode and size it builds a fresh SQLite database (`flask db upgrade`, an admin made
with `flask users create`, N jobs bulk-inserted, due in a day, plus a few thousand runs of
history), projects the jobs into a private redis-server in Celery mode (`flask sync-schedule`;
no worker, no beat), serves the admin with real gunicorn (2 workers x 4 threads) on loopback
and drives it with C Python clients (threads, one keep-alive connection and login each):

1. the jobs page, GET /jobs/ (full page);
2. a search as the search box sends it: GET /jobs/?q=...&task=&queue=&state= with HX-Request
   (the table partial);
3. pause / resume as the row buttons send them: HTMX POSTs with the CSRF header, alternating
   pause and resume on different jobs, so every request changes a job.

Each kind gets a warm-up, then D seconds of C concurrent clients; p50 / p95 (nearest rank),
throughput and errors (non-2xx, a wrong body or a failed request) are reported.
"""

from __future__ import annotations

import argparse
import http.client
import http.cookies
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.beat_bench import log as default_log  # noqa: E402
from bench.beat_bench import ms, percentile, render_markdown, render_text  # noqa: E402
from tests.processes import CeleryStack, RedisServer, stop  # noqa: E402
from tests.support import free_port, wait_for  # noqa: E402

MODES = ("embedded", "celery")
KINDS = ("jobs page", "search (HTMX)", "pause/resume (HTMX)")
ADMIN = "bench-admin"
PASSWORD = "bench-password-1"
SEARCH = "00012"  # names are job-NNNNNN-word: matches job-000012-* and job-000120..129-* (11 jobs)
POOL_PER_CLIENT = 40  # jobs each client pauses and resumes (half of them start paused)
TARGET_SIZE, TARGET_KIND, TARGET_P95 = 10_000, "jobs page", 0.050
WORDS = ("orders-collect", "daily-report", "crm-import", "cleanup", "heartbeat")
TASKS = (("collect.http_get", "collect", {"url": "https://example.com/health"}),
         ("report.runs_csv", "report", {}),
         ("system.sleep", "system", {"seconds": 0}))
RUN_JOBS, RUNS_PER_JOB = 2000, 3  # run history: 3 runs each for the first 2,000 jobs by name
SETUP_TIMEOUT = 600.0  # the longest one setup step (a CLI command, the load, a leader build) may take
REQUEST_TIMEOUT = 60.0
CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')
CSRF_HEADER = re.compile(rb'"X-CSRFToken": "([^"]+)"')
TOTAL = re.compile(rb"(\d+) in all")


# -- HTTP client -------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection with its own cookies (a browser tab, roughly)."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, form: dict | None = None,
                headers: dict | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        sent = {"Host": f"127.0.0.1:{self.port}", "User-Agent": "admin-bench", "Accept": "*/*"}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.update(headers or {})
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
            try:
                self.conn.request(method, path, body, sent)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: reconnect once
                raise
            except BaseException:
                self.close()
                raise
            for header in response.headers.get_all("Set-Cookie") or []:
                jar = http.cookies.SimpleCookie()
                jar.load(header)
                for name, morsel in jar.items():
                    if morsel.value == "" or morsel["max-age"] == "0":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            if response.will_close:
                self.close()
            return response.status, response.headers, data
        raise AssertionError("unreachable")

    def login(self) -> None:
        """Log in through the form, then read the CSRF token HTMX sends (body hx-headers)."""
        status, _, page = self.request("GET", "/auth/login")
        found = CSRF_FIELD.search(page)
        if status != 200 or not found:
            raise RuntimeError(f"login page: HTTP {status}, CSRF field {'found' if found else 'missing'}")
        status, headers, _ = self.request("POST", "/auth/login", form={
            "csrf_token": found.group(1).decode(), "username": ADMIN, "password": PASSWORD})
        if status not in (302, 303) or "/auth/login" in (headers.get("Location") or ""):
            raise RuntimeError(f"login refused: HTTP {status}")
        status, _, page = self.request("GET", "/jobs/")
        found = CSRF_HEADER.search(page)
        if status != 200 or not found:
            raise RuntimeError(f"jobs page after login: HTTP {status}, CSRF header {'found' if found else 'missing'}")
        self.csrf = found.group(1).decode()

    def htmx(self, target: str, trigger: str | None = None) -> dict[str, str]:
        """Return the headers htmx adds to a request from the jobs page."""
        headers = {"HX-Request": "true", "HX-Current-URL": f"http://127.0.0.1:{self.port}/jobs/",
                   "HX-Target": target, "X-CSRFToken": self.csrf}
        if trigger:
            headers["HX-Trigger"] = trigger
        return headers


# -- the three request kinds -------------------------------------------------------------------


def jobs_page(client: Client, state) -> str | None:
    """GET /jobs/, the full page; return an error note or None."""
    status, _, body = client.request("GET", "/jobs/")
    if status != 200:
        return f"HTTP {status}"
    if b'id="jobs-table"' not in body or b"<html" not in body:
        return "not the jobs page"
    return None


def search(client: Client, state) -> str | None:
    """The search box: hx-get of the filter form (all its fields), answered with the table."""
    path = "/jobs/?" + urlencode({"q": SEARCH, "task": "", "queue": "", "state": ""})
    status, _, body = client.request("GET", path, headers=client.htmx("jobs-table", "job-filters"))
    if status != 200:
        return f"HTTP {status}"
    if not body.lstrip().startswith(b'<div id="jobs-table"'):
        return "not the table partial"
    return None


class PauseResume:
    """One client's jobs: pause the next active one, then resume the oldest paused one, and so on."""

    def __init__(self, active: list[int], paused: list[int]):
        self.active, self.paused = deque(active), deque(paused)
        self.count = 0

    def __call__(self, client: Client, state) -> str | None:
        pause = bool(self.active) and (self.count % 2 == 0 or not self.paused)
        self.count += 1
        job_id = self.active.popleft() if pause else self.paused.popleft()
        (self.paused if pause else self.active).append(job_id)
        action = "pause" if pause else "resume"
        status, _, body = client.request(
            "POST", f"/jobs/{job_id}/{action}", form={"csrf_token": client.csrf, "next": "/jobs/"},
            headers=client.htmx(f"job-{job_id}"))
        if status != 200:
            return f"{action}: HTTP {status}"
        expected = b'aria-label="Resume ' if pause else b'aria-label="Pause '
        if f'<tr id="job-{job_id}"'.encode() not in body or expected not in body:
            return f"{action}: not the changed row"
        return None


@dataclass
class Measure:
    mode: str
    size: int
    kind: str
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    requests: int = 0
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0


def drive(clients: list[Client], actions: list, seconds: float, result: Measure | None) -> None:
    """Run each client's action in its own thread for `seconds`; record into result if given."""
    go = threading.Event()
    clock = {"deadline": 0.0}
    per_thread: list[dict] = [{"lat": [], "errors": 0, "count": 0, "notes": [], "end": 0.0}
                              for _ in clients]

    def work(i: int) -> None:
        mine = per_thread[i]
        go.wait(timeout=60)
        while time.perf_counter() < clock["deadline"]:
            started = time.perf_counter()
            try:
                error = actions[i](clients[i], mine)
            except Exception as exc:  # a failed request is an error, not the end of the run
                error = f"{type(exc).__name__}: {exc}"
            took = time.perf_counter() - started
            mine["count"] += 1
            if error is None:
                mine["lat"].append(took)
            else:
                mine["errors"] += 1
                if len(mine["notes"]) < 3:
                    mine["notes"].append(error)
        mine["end"] = time.perf_counter()

    threads = [threading.Thread(target=work, args=(i,), name=f"client-{i}", daemon=True)
               for i in range(len(clients))]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    clock["deadline"] = start + seconds
    go.set()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT * 2 + 10)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("a client thread did not finish (request timeouts?)")
    if result is not None:
        result.elapsed = max(m["end"] for m in per_thread) - start
        for mine in per_thread:
            result.latencies += mine["lat"]
            result.errors += mine["errors"]
            result.requests += mine["count"]
            result.notes += mine["notes"]


# -- one site: a database, maybe Redis, gunicorn -----------------------------------------------


def run_checked(args: list[str], env: dict, what: str, timeout: float = SETUP_TIMEOUT) -> str:
    """Run a command to completion (with a timeout); return its stdout or raise with its output."""
    try:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{what}: no result after {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


class Site:
    """The admin of one mode on N jobs, served by gunicorn."""

    def __init__(self, mode: str, size: int, folder: Path, server: RedisServer | None, db_number: int,
                 processes: list[subprocess.Popen], log):
        self.mode, self.size, self.folder, self.log = mode, size, folder, log
        self.stack = CeleryStack(folder, server if mode == "celery" else None, db_number)
        self.stack.instance.mkdir(parents=True)
        self.processes = processes
        self.gunicorn: subprocess.Popen | None = None
        self.port = 0
        self.setup: dict[str, float] = {}
        self.pool: dict = {}
        broker = self.stack.broker_url
        instance = self.stack.instance
        self.env = self.stack.env(
            USE_CELERY="true" if mode == "celery" else "false",
            DATABASE_URL=f"sqlite:///{instance / 'scheduler.db'}",
            SECRET_KEY="admin-bench", SCHEDULE_REDIS_URL=broker, SCHEDULE_REDIS_PREFIX="jobsched",
            SCHEDULER_ENABLED="true", SCHEDULER_LOCK_FILE=str(instance / "scheduler.lock"),
            ARTIFACT_DIR=str(instance / "artifacts"), ETL_IMPORT_DIR=str(instance / "imports"),
            ETL_DATABASE_URL=f"sqlite:///{instance / 'etl.db'}", JOBS_PER_PAGE="25", LOG_LEVEL="WARNING",
        )

    @property
    def database(self) -> Path:
        return self.stack.instance / "scheduler.db"

    def flask(self, *args: str) -> str:
        return run_checked([sys.executable, "-m", "flask", *args], self.env, f"flask {' '.join(args[:2])}")

    def prepare(self, pool: int) -> None:
        """Create the database, the admin and the jobs; project them into Redis in Celery mode."""
        started = time.perf_counter()
        self.flask("db", "upgrade")
        self.flask("users", "create", ADMIN, "--role", "admin", "--password", PASSWORD)
        self.setup["database and admin"] = time.perf_counter() - started
        out = run_checked([sys.executable, str(Path(__file__).resolve()), "--load-only", str(self.size),
                           "--pool", str(pool)], self.env, "loading the jobs")
        self.pool = json.loads(out.strip().splitlines()[-1])
        self.setup[f"insert {self.size:,} jobs + {self.pool['runs']:,} runs"] = self.pool["seconds"]
        if self.mode == "celery":
            started = time.perf_counter()
            synced = self.flask("sync-schedule").strip()
            self.setup["flask sync-schedule"] = time.perf_counter() - started
            self.log(f"  {self.mode} {self.size:,}: sync-schedule {synced}")

    def serve(self) -> None:
        """Start gunicorn (2 workers x 4 threads) and wait until both workers have loaded the app."""
        self.port = free_port()
        ready = self.folder / "ready"
        ready.mkdir()
        # Only a hook that says when a worker has loaded the app; every setting is on the command line.
        conf = self.folder / "gunicorn_hooks.py"
        conf.write_text("import os, pathlib\n\n\ndef post_worker_init(worker):\n"
                        f"    pathlib.Path({str(ready)!r}, f'worker-{{os.getpid()}}').touch()\n")
        binary = Path(sys.executable).parent / "gunicorn"
        if not binary.exists():
            binary = Path(shutil.which("gunicorn") or "gunicorn")
        started = time.perf_counter()
        with open(self.folder / "gunicorn.log", "ab") as fh:
            self.gunicorn = subprocess.Popen(
                [str(binary), "-c", str(conf), "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
                 "--threads", "4", "webapp.wsgi:app"],
                cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(self.gunicorn)
        self.log(f"  {self.mode} {self.size:,}: gunicorn pid {self.gunicorn.pid} on port {self.port}")

        def workers_ready():
            if self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.gunicorn.returncode}):\n{self.log_tail()}")
            return len(list(ready.iterdir())) >= 2

        wait_for(workers_ready, timeout=SETUP_TIMEOUT, interval=0.1, message="2 gunicorn workers to load the app")
        self.setup["gunicorn workers loaded"] = time.perf_counter() - started
        if self.mode == "embedded":
            wait_for(self.leader_ready, timeout=SETUP_TIMEOUT, interval=0.25,
                     message="the embedded scheduler's leader to load the jobs")
            self.setup["embedded leader holds the jobs"] = time.perf_counter() - started

    def leader_ready(self):
        """Return the leader's heartbeat state once it has built its APScheduler (it beats after)."""
        if self.gunicorn.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({self.gunicorn.returncode}):\n{self.log_tail()}")
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as conn:
                row = conn.execute("SELECT state FROM scheduler_heartbeats WHERE name = 'embedded'").fetchone()
        except sqlite3.Error:
            return None
        return json.loads(row[0]) if row else None

    def log_tail(self) -> str:
        try:
            return (self.folder / "gunicorn.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.gunicorn is not None:
            stop(self.gunicorn, signal.SIGTERM, timeout=30)
            if self.gunicorn in self.processes:
                self.processes.remove(self.gunicorn)
            self.gunicorn = None


def measure_site(site: Site, duration: float, concurrency: int, log) -> list[Measure]:
    """Log C clients in and measure each request kind on one running site."""
    clients = [Client(site.port) for _ in range(concurrency)]
    try:
        errors: list[BaseException] = []

        def login(client):
            try:
                client.login()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=login, args=(c,), daemon=True) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT * 3)
        if errors or any(t.is_alive() for t in threads):
            raise RuntimeError(f"login failed: {errors[0] if errors else 'timed out'}")

        # Check once that the search finds what it should.
        status, _, body = clients[0].request("GET", "/jobs/?" + urlencode({"q": SEARCH}),
                                             headers=clients[0].htmx("jobs-table"))
        found = TOTAL.search(body)
        site.setup["search matches"] = float(found.group(1)) if found else -1
        active, paused = site.pool["active"], site.pool["paused"]
        cyclers = [PauseResume(active[i::concurrency], paused[i::concurrency]) for i in range(concurrency)]
        warmup = min(2.0, max(0.25, duration / 4))
        results = []
        for kind in KINDS:
            if kind == "jobs page":
                actions = [jobs_page] * concurrency
            elif kind.startswith("search"):
                actions = [search] * concurrency
            else:
                actions = cyclers
            drive(clients, actions, warmup, None)
            result = Measure(site.mode, site.size, kind)
            drive(clients, actions, duration, result)
            log(f"  {site.mode} {site.size:,} {kind}: p50 {ms(percentile(result.latencies, 50))}  "
                f"p95 {ms(percentile(result.latencies, 95))}  {result.throughput:,.1f} req/s  "
                f"errors {result.errors}/{result.requests}"
                + (f"  ({'; '.join(sorted(set(result.notes)))})" if result.notes else ""))
            results.append(result)
        return results
    finally:
        for client in clients:
            client.close()


# -- tables ------------------------------------------------------------------------------------


def tables(results: list[Measure], setups: dict, duration: float, concurrency: int):
    """Return (title, header, rows): the measurements, then the setup times."""
    by = {(r.mode, r.size, r.kind): r for r in results}
    title = (f"Admin under load: gunicorn 2 workers x 4 threads on loopback, {concurrency} concurrent "
             f"keep-alive clients x {duration:g} s per request kind (after a warm-up); SQLite")
    header = ["mode", "jobs", "request", "p50", "p95", "throughput", "errors", "requests",
              "target", "celery/embedded p95"]
    rows = []
    for size in sorted({r.size for r in results}):
        for mode in MODES:
            for kind in KINDS:
                r = by.get((mode, size, kind))
                if r is None:
                    continue
                p95 = percentile(r.latencies, 95)
                target = ""
                if size == TARGET_SIZE and kind == TARGET_KIND:
                    met = p95 is not None and p95 < TARGET_P95 and r.errors == 0
                    target = f"p95 < {TARGET_P95 * 1000:.0f} ms: {'met' if met else 'not met'}"
                compare = ""
                other = by.get(("embedded", size, kind))
                if mode == "celery" and other is not None:
                    theirs = percentile(other.latencies, 95)
                    if p95 is not None and theirs:
                        compare = f"{p95 / theirs:.2f}x"
                rows.append([mode, f"{size:,}", kind, ms(percentile(r.latencies, 50)), ms(p95),
                             f"{r.throughput:,.1f} req/s", str(r.errors), f"{r.requests:,}", target, compare])
    out = [(title, header, rows)]
    if setups:
        setup_rows = []
        for (mode, size), steps in setups.items():
            for step, value in steps.items():
                shown = f"{value:.0f}" if step == "search matches" else f"{value:.1f} s"
                setup_rows.append([mode, f"{size:,}", step, shown])
        out.append(("Setup (not measured under load)", ["mode", "jobs", "step", "time"], setup_rows))
    return out


# -- run ---------------------------------------------------------------------------------------


def run(sizes: list[int], modes: list[str], duration: float, concurrency: int, log=print):
    """Measure every mode at every size; return the tables (title, header, rows)."""
    unknown = set(modes) - set(MODES)
    if unknown or not modes or not sizes or concurrency < 1 or duration <= 0:
        raise ValueError(f"bad arguments: modes {modes}, sizes {sizes}, concurrency {concurrency}")
    folder = Path(tempfile.mkdtemp(prefix="admin-bench-"))
    processes: list[subprocess.Popen] = []
    server: RedisServer | None = None
    results: list[Measure] = []
    setups: dict = {}
    try:
        if "celery" in modes:
            (folder / "redis").mkdir()
            server = RedisServer(folder / "redis")
            server.start()
            log(f"redis-server pid {server.process.pid} on port {server.port}; files in {folder}")
        db_number = 0
        for size in sizes:
            for mode in (m for m in MODES if m in modes):
                db_number += 1
                site = Site(mode, size, folder / f"{mode}-{size}", server, db_number, processes, log)
                try:
                    log(f"{mode}, {size:,} jobs: preparing")
                    site.prepare(pool=min(POOL_PER_CLIENT * concurrency, max(2, size // 2)))
                    site.serve()
                    log(f"{mode}, {size:,} jobs: measuring")
                    results += measure_site(site, duration, concurrency, log)
                finally:
                    site.close()
                    setups[(mode, size)] = site.setup
                shutil.rmtree(site.folder, ignore_errors=True)  # 100,000-job databases add up
    except Exception:
        for path in sorted(folder.glob("*/gunicorn.log")):  # say why before the folder goes
            log(f"{path.relative_to(folder)} (end):\n{path.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for process in list(processes):
            stop(process, signal.SIGTERM, timeout=30)
        processes.clear()
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return tables(results, setups, duration, concurrency)


# -- loading (in a subprocess, with the site's environment) ------------------------------------


def load_jobs(size: int, pool: int) -> dict:
    """Insert `size` jobs due in a day and some run history; pre-pause half the pool."""
    from sqlalchemy import insert, select, text, update

    from webapp import create_app
    from webapp.extensions import db
    from webapp.models import Job, JobRun, ScheduleRevision
    from webapp.schedules import Schedule

    app = create_app()
    started = time.perf_counter()
    with app.app_context():
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        cron = "30 3 * * *"
        cron_next = Schedule(kind="cron", timezone="UTC", cron=cron).next_after(
            datetime.now(timezone.utc) + timedelta(days=1)).replace(tzinfo=None)
        rows, interval = [], []
        for i in range(size):
            task, queue, params = TASKS[i % len(TASKS)]
            name = f"job-{i:06d}-{WORDS[i % len(WORDS)]}"
            row = {"name": name, "name_key": name.casefold(), "task": task, "queue": queue, "params": params,
                   "timezone": "UTC", "misfire_policy": "run_once", "max_concurrent": 1, "paused": False,
                   "revision": 1, "description": "", "created_by": "bench", "cron": None, "every_seconds": None,
                   "anchor_at": None}
            if i % 5 == 4:  # a cron job, next due a day from now at the earliest
                row.update(schedule_kind="cron", cron=cron, next_run_at=cron_next, anchor_at=now)
            else:  # interval jobs whose first tick (anchor + every) is a day away, and so is a resume's
                every = (3600, 21600, 86400)[i % 3]
                nxt = now + timedelta(days=1, milliseconds=i)
                row.update(schedule_kind="interval", every_seconds=every, next_run_at=nxt,
                           anchor_at=nxt - timedelta(seconds=every))
                interval.append(i)
            rows.append(row)
        for start in range(0, len(rows), 5000):
            db.session.execute(insert(Job.__table__), rows[start:start + 5000])
        ids = dict(db.session.execute(select(Job.name, Job.id)).all())
        id_of = [ids[r["name"]] for r in rows]

        runs = []
        for i in range(min(size, RUN_JOBS)):
            row = rows[i]
            for k in range(RUNS_PER_JOB):
                due = now - timedelta(hours=RUNS_PER_JOB - k, minutes=i % 60)
                failed = (i + k) % 7 == 0
                runs.append({"job_id": id_of[i], "job_name": row["name"], "task": row["task"],
                             "queue": row["queue"], "params": row["params"],
                             "status": "failed" if failed else "succeeded", "trigger": "schedule",
                             "scheduled_for": due, "queued_at": due, "started_at": due + timedelta(seconds=1),
                             "finished_at": due + timedelta(seconds=3), "duration_ms": 2000,
                             "worker": "bench", "attempt": 1, "result": None if failed else {"ok": True},
                             "error": "RuntimeError: bench" if failed else None})
        for start in range(0, len(runs), 5000):
            db.session.execute(insert(JobRun.__table__), runs[start:start + 5000])
        db.session.execute(text("UPDATE jobs SET last_run_id = (SELECT max(r.id) FROM job_runs r "
                                "WHERE r.job_id = jobs.id) WHERE id IN (SELECT job_id FROM job_runs)"))

        chosen = sorted(random.Random(size).sample(interval, min(pool, len(interval))))
        chosen_ids = [id_of[i] for i in chosen]
        random.Random(size + 1).shuffle(chosen_ids)
        paused, active = chosen_ids[: len(chosen_ids) // 2], chosen_ids[len(chosen_ids) // 2:]
        if paused:
            db.session.execute(update(Job).where(Job.id.in_(paused)).values(paused=True, next_run_at=None))
        if not db.session.execute(update(ScheduleRevision).where(ScheduleRevision.id == 1)
                                  .values(value=ScheduleRevision.value + 1)).rowcount:
            db.session.add(ScheduleRevision(id=1, value=1))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return {"active": active, "paused": paused, "runs": len(runs),
            "seconds": round(time.perf_counter() - started, 3)}


# -- main --------------------------------------------------------------------------------------


def machine() -> list[str]:
    def version(args):
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return [f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.platform()}, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}",
            f"- {version([str(gunicorn), '--version'])}; "
            f"{version([shutil.which('redis-server') or 'redis-server', '--version']).split(' sha=')[0]}",
            "- the clients run on the same machine as the server (loopback)"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 2 s per request kind")
    parser.add_argument("--sizes", help="job counts, comma-separated (10000,100000)")
    parser.add_argument("--modes", default="embedded,celery", help="embedded,celery")
    parser.add_argument("--duration", type=float, help="seconds measured per request kind (10; 2 with --quick)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--output", help="write the tables as markdown to this file")
    parser.add_argument("--load-only", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_only is not None:  # the loader subprocess of one site
        print(json.dumps(load_jobs(args.load_only, args.pool)))
        return 0
    sizes = ([int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()] if args.sizes
             else [1000] if args.quick else [10_000, 100_000])
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    duration = args.duration or (2.0 if args.quick else 10.0)
    command = "PYTHONPATH=. .venv/bin/python bench/admin_bench.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even if started with it ignored
    started = datetime.now(timezone.utc)
    try:
        report = run(sizes, modes, duration, args.concurrency, log=default_log)
    except (KeyboardInterrupt, SystemExit):
        default_log("interrupted; processes stopped")
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    print()
    for table in report:
        print(render_text(*table))
        print()
    if args.output:
        lines = ["# Admin under load", "", f"- date: {started:%Y-%m-%d %H:%M} UTC", f"- command: `{command}`",
                 *machine(), f"- search: `q={SEARCH}` (the search box's HTMX GET); pause/resume: the row "
                 "buttons' HTMX POSTs, alternating on different jobs; p50/p95 nearest-rank over the "
                 "successful requests; throughput = all requests / measured time", ""]
        for table in report:
            lines += [render_markdown(*table), ""]
        Path(args.output).write_text("\n".join(lines))
        default_log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
