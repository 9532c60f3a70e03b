# Image of the admin, the Celery worker and the beat (docker-compose.ops.yml).
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && mkdir vendor \
 && cp node_modules/htmx.org/dist/htmx.min.js node_modules/@picocss/pico/css/pico.min.css vendor/

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONPATH=/app FLASK_APP=webapp INSTANCE_PATH=/app/instance
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
COPY --from=assets /build/vendor static/vendor
RUN useradd --create-home app && mkdir -p instance && chown app instance
USER app
EXPOSE 5000
CMD ["gunicorn", "--bind", "0.0.0.0:5000", "--workers", "2", "--threads", "4", "webapp.wsgi:app"]
