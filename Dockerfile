# The orchestrator image (seed §4.2, for Python): the ASGI server on port 3000 as a non-root user.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DEBUG=false \
    LOG_FORMAT=json \
    METRICS_PORT=9091 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/velocity-prometheus \
    VELOCITY_VAR_DIR=/tmp/velocity-var

WORKDIR /app

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# collectstatic reads settings; the build has no secrets, so it gets a throwaway key.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input --verbosity 0

RUN addgroup --system --gid 1001 velocity \
    && adduser --system --uid 1001 --ingroup velocity --no-create-home orchestrator
RUN mkdir -p /tmp/velocity-var /tmp/velocity-prometheus \
    && chown -R 1001:1001 /tmp/velocity-var /tmp/velocity-prometheus
USER 1001:1001

EXPOSE 3000 9091

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -f http://localhost:3000/health || exit 1

# The ASGI server (daphne on $HOST:$PORT) under the supervisor that also serves /metrics on METRICS_PORT.
CMD ["python", "-m", "velocity.run", "web"]
