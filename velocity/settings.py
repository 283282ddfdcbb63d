"""Settings for the Velocity orchestrator.

Every value comes from the environment and has a default that runs with nothing configured: SQLite under
``var/``, the in-memory channel layer, django-q2's ORM broker, the local machine provider and the embedded
realtime endpoint. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from velocity.var_dir import read_or_create_secret, secure_var_dir

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VELOCITY_VAR_DIR", BASE_DIR / "var"))
VERSION = "0.1.0"
secure_var_dir(VAR_DIR)  # 0700, its files 0600, on every start: the local provider runs strangers' code here


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_optional_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else None


def env_secret(name: str, default: str = "") -> str:
    """``NAME``, or the content of the file named by ``NAME_FILE`` (Docker and Fly secrets mounted as files)."""
    path = os.environ.get(f"{name}_FILE", "").strip()
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def embedded_secret(name: str) -> str:
    """A random secret generated once into ``var/`` so the embedded mode needs no configuration."""
    return read_or_create_secret(VAR_DIR, name)


DEBUG = env_bool("DEBUG", default=True)
# A missing production secret is reported by the system check velocity.E001 rather than by a crash here;
# the marker value is never accepted outside DEBUG.
UNSET_SECRET_KEY = "velocity-unset-secret-key"  # noqa: S105  (a marker, not a secret)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or (embedded_secret("secret_key") if DEBUG else UNSET_SECRET_KEY)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

HOST = os.environ.get("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "corsheaders",
    "django_q",
    "velocity",
    "sessions.apps.PreviewSessionsConfig",
    "machines",
    "realtime_bridge",
    "webhooks",
    "dashboard",
]
# More apps by dotted path, comma-separated: e.g. one that registers its own tables for `postgres_changes`
# (the realtime conformance suite's server loads its test table so).
INSTALLED_APPS += [app.strip() for app in os.environ.get("VELOCITY_EXTRA_APPS", "").split(",") if app.strip()]

MIDDLEWARE = [
    "velocity.logging.RequestLogMiddleware",
    # Before the API's error shape and authentication: a preflight is answered here, never with a 401.
    "velocity.middleware.CorsMiddleware",
    "velocity.middleware.ApiErrorShapeMiddleware",
    "sessions.middleware.PreviewHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: keeps the chain above in one thread under ASGI (its docstring says why).
    "velocity.middleware.SyncChainEnd",
]

ROOT_URLCONF = "velocity.urls"
ASGI_APPLICATION = "velocity.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The web server, the cluster and the local agents share one file: wait for locks, don't fail. IMMEDIATE
# takes the write lock at BEGIN, so a transaction never has to upgrade a read lock (which fails at once).
SQLITE_OPTIONS = {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
DATABASE_URL = env_secret("DATABASE_URL")
if DATABASE_URL:
    # Under ASGI, sync views run in a thread pool and persistent connections accumulate per thread until
    # PostgreSQL refuses more clients (seen under load in the benchmark): close them after each request.
    DATABASES = {
        "default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("CONN_MAX_AGE", 0), conn_health_checks=True)
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "velocity.sqlite3"),
            "OPTIONS": SQLITE_OPTIONS,
        }
    }
# A web process on PostgreSQL (``velocity.run web`` sets WEB_DATABASE_POOL for its daphnes, and only for them: the
# task cluster forks its workers) takes its connections from a pool (psycopg_pool, Django's "pool" option): a
# request on Django's thread per request (a create, a delete, a held assignment poll) then borrows an open
# connection instead of starting a PostgreSQL backend (5-6 ms here, and the backend's own CPU). The pool replaces
# persistent connections, so CONN_MAX_AGE is 0 (the request threads still keep theirs: asgi_handler.py).
DATABASE_POOL = env_bool("WEB_DATABASE_POOL", False) and DATABASES["default"]["ENGINE"].endswith("postgresql")
if DATABASE_POOL:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {"min_size": 1, "max_size": env_int("DATABASE_POOL_MAX_SIZE", 32), "timeout": 10, "max_idle": 300},
    }

# The web server's request threads (velocity/asgi_handler.py): how many per process, and how long each keeps its
# database connection (the threads live as long as the process, so at most WEB_THREADS connections each).
WEB_THREADS = env_int("WEB_THREADS", 4)
WEB_THREAD_CONN_MAX_AGE = env_int("WEB_THREAD_CONN_MAX_AGE", 60)
# Freeze what the web process loaded at startup out of the garbage collector (velocity/gc_tuning.py): on in the
# daphnes `velocity.run web` starts, off where the ASGI module is imported otherwise (a test run).
WEB_GC_FREEZE = env_bool("WEB_GC_FREEZE", False)

REDIS_URL = env_secret("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 30},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}

Q_CLUSTER: dict[str, object] = {
    "name": "velocity",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": 120,
    "retry": 180,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# The same brokers, also writing the cluster's heartbeat where every process reads it (velocity.task_queue).
Q_CLUSTER["broker_class"] = "velocity.task_queue." + ("HeartbeatRedis" if REDIS_URL else "HeartbeatORM")
# /health and the overview: a cluster silent this long is down; a task waiting this long, or a session
# in `creating` this long, is a backlog.
WORKER_STALE_SECONDS = env_int("WORKER_STALE_SECONDS", 15)
QUEUE_LAG_SECONDS = env_int("QUEUE_LAG_SECONDS", 60)
STUCK_CREATING_SECONDS = env_int("STUCK_CREATING_SECONDS", 90)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Static files live in their apps (`dashboard/static/dashboard/`), found by the app directories finder.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["sessions.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["sessions.authentication.SupabaseJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["sessions.permissions.IsTokenUser"],
    "DEFAULT_THROTTLE_CLASSES": ["sessions.throttles.ApiThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "sessions_create": os.environ.get("THROTTLE_CREATE", "30/min"),
        "sessions": os.environ.get("THROTTLE_READ", "600/min"),
        "agent": os.environ.get("THROTTLE_AGENT", "1200/min"),
        "ip": os.environ.get("THROTTLE_IP", "3000/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "velocity.pagination.CountingLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "sessions.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
CACHES = (
    {
        "default": {
            "BACKEND": "velocity.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "velocity-cache",
        }
    }
    if REDIS_URL
    else {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
)
SPECTACULAR_SETTINGS = {
    "TITLE": "Velocity preview orchestrator API",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sessions.schema.add_common_error_responses",
    ],
    # A delivery's status and a session's are both "status": each choice set gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "sessions.models.SessionStatus",
        "WebhookDeliveryStatusEnum": "webhooks.models.DeliveryStatus",
    },
}

# --- CORS (django-cors-headers) -------------------------------------------------------------------------
# Browser editors on their own origin call the REST API and the REST broadcast with bearer tokens (never
# cookies, so no credentials). Unset: the usual local dev servers' origins with DEBUG, none without;
# set (even empty): exactly that comma-separated list, or ``*`` for every origin.
CORS_DEV_ORIGINS = [
    f"http://{host}:{port}" for port in (5173, 3000, 8080, 4173, 4200) for host in ("localhost", "127.0.0.1")
]
_cors_origins = os.environ.get("CORS_ALLOWED_ORIGINS")
CORS_ALLOWED_ORIGINS = (
    [o.strip().rstrip("/") for o in _cors_origins.split(",") if o.strip()]
    if _cors_origins is not None
    else (CORS_DEV_ORIGINS if DEBUG else [])
)
CORS_ALLOW_ALL_ORIGINS = CORS_ALLOWED_ORIGINS == ["*"]
if CORS_ALLOW_ALL_ORIGINS:
    CORS_ALLOWED_ORIGINS = []
CORS_URLS_REGEX = r"^/(api/|realtime/v1/api/broadcast)"
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ("authorization", "content-type", "apikey", "x-client-info")
# Readable by the page: when to retry a 429.
CORS_EXPOSE_HEADERS = ("retry-after",)

# --- Machines -------------------------------------------------------------------------------------------
MACHINE_PROVIDER = os.environ.get("MACHINE_PROVIDER", "local")
# Local provider as root: each machine's user code runs as its own uid from this range, its project under
# this folder (outside VAR_DIR, which only the orchestrator may enter; see machines/providers/local_sandbox.py).
LOCAL_SANDBOX_DIR = Path(os.environ.get("LOCAL_SANDBOX_DIR", "/tmp/velocity-sandboxes"))  # noqa: S108  (0711, checked)
LOCAL_SANDBOX_UID_BASE = env_int("LOCAL_SANDBOX_UID_BASE", 2_000_000_000)
LOCAL_SANDBOX_UID_COUNT = env_int("LOCAL_SANDBOX_UID_COUNT", 65_536)
FLY_API_TOKEN = env_secret("FLY_API_TOKEN")
FLY_APP_NAME = os.environ.get("FLY_APP_NAME", "")
FLY_API_BASE_URL = os.environ.get("FLY_API_BASE_URL", "https://api.machines.dev")
FLY_REGION = os.environ.get("FLY_REGION", "iad")
PREVIEW_CONTAINER_IMAGE = os.environ.get(
    "PREVIEW_CONTAINER_IMAGE", "ghcr.io/velocity/velocity-preview-container:latest"
)
WARM_POOL_SIZE = env_int("WARM_POOL_SIZE", 0)  # the old fixed size: floor and ceiling when those are not set
# The auto-sized pool (docs/machines.md, "The warm pool"): between WARM_POOL_MIN and WARM_POOL_MAX machines,
# following recent creates per minute x time to provision, capped by POOL_BUDGET_USD_PER_HOUR (empty: no cap).
WARM_POOL_MIN = env_int("WARM_POOL_MIN", -1)  # -1: WARM_POOL_SIZE
WARM_POOL_MAX = env_int("WARM_POOL_MAX", -1)  # -1: the larger of WARM_POOL_SIZE and WARM_POOL_MIN
WARM_POOL_HEADROOM_PERCENT = env_int("WARM_POOL_HEADROOM_PERCENT", 50)
WARM_POOL_SUSPENDED = env_int("WARM_POOL_SUSPENDED", 0)  # of the target, kept suspended (storage only)
POOL_BUDGET_USD_PER_HOUR = os.environ.get("POOL_BUDGET_USD_PER_HOUR", "").strip()
POOL_DEMAND_WINDOW_SECONDS = env_int("POOL_DEMAND_WINDOW_SECONDS", 300)
POOL_BURST_WINDOW_SECONDS = env_int("POOL_BURST_WINDOW_SECONDS", 20)
POOL_PROVISION_SECONDS_MIN = env_int("POOL_PROVISION_SECONDS_MIN", 1)  # the agent boots after "started"
# A create that claimed a warm machine waits this long for its agent's `ready`, to answer `active` at once
# (else it answers `creating` and the client follows the session as for a cold start).
WARM_CONFIRM_MS = env_int("WARM_CONFIRM_MS", 150)
# A warm machine's agent that has not reported this many seconds after its claim never learnt its project
# (frozen or gone): the agent watch destroys that machine and queues the session for another.
WARM_PICKUP_SECONDS = float(os.environ.get("WARM_PICKUP_SECONDS") or 10)

ORCHESTRATOR_URL = os.environ.get("ORCHESTRATOR_URL", f"http://{HOST}:{PORT}").rstrip("/")
# With a wildcard domain (``*.example-previews.dev`` pointing at the orchestrator), each Fly preview is served at
# ``https://<session id>.<suffix>/`` with its paths unchanged, and only there: required with MACHINE_PROVIDER=fly,
# on another registrable domain than the orchestrator's (velocity.E009, E010). PREVIEW_BASE_URL is no longer read.
PREVIEW_HOST_SUFFIX = os.environ.get("PREVIEW_HOST_SUFFIX", "").strip().strip(".").lower()
if PREVIEW_HOST_SUFFIX:
    ALLOWED_HOSTS.append(f".{PREVIEW_HOST_SUFFIX}")
PREVIEW_MACHINE_MEMORY_MB = env_int("PREVIEW_MACHINE_MEMORY_MB", 512)
PROVISION_TIMEOUT = env_int("PROVISION_TIMEOUT", 180)

# --- Sessions -------------------------------------------------------------------------------------------
PREVIEW_INACTIVITY_TIMEOUT = env_int("PREVIEW_INACTIVITY_TIMEOUT", 1800)
PREVIEW_SESSION_TTL = env_int("PREVIEW_SESSION_TTL", 7200)
# The newest agent log lines and file-sync events kept per session for the operator's session page (a reload
# still shows them): written from a bounded in-memory buffer every SESSION_TRACE_FLUSH_SECONDS (0: only when
# ``sessions.services.traces.traces_flush`` is called); past SESSION_TRACE_BUFFER waiting items new ones are
# dropped and counted (velocity_session_traces_dropped_total).
AGENT_LOG_KEEP = env_int("AGENT_LOG_KEEP", 300)
SYNC_EVENTS_KEEP = env_int("SYNC_EVENTS_KEEP", 300)
SESSION_TRACE_FLUSH_SECONDS = float(os.environ.get("SESSION_TRACE_FLUSH_SECONDS") or 0.5)
SESSION_TRACE_BUFFER = env_int("SESSION_TRACE_BUFFER", 10_000)
# Each session's activity per minute (edits, bytes, heartbeats), the policy dry-run's history: tallied in memory
# and upserted every SESSION_ACTIVITY_FLUSH_SECONDS (0: only when ``activity_flush`` is called); past
# SESSION_ACTIVITY_BUFFER distinct (session, minute) counters waiting, new ones are dropped. Minutes older than
# SESSION_ACTIVITY_RETENTION_DAYS are pruned daily (the dry-run looks back 30 days).
SESSION_ACTIVITY_FLUSH_SECONDS = float(os.environ.get("SESSION_ACTIVITY_FLUSH_SECONDS") or 5)
SESSION_ACTIVITY_BUFFER = env_int("SESSION_ACTIVITY_BUFFER", 50_000)
SESSION_ACTIVITY_RETENTION_DAYS = env_int("SESSION_ACTIVITY_RETENTION_DAYS", 35)

# --- Webhooks (docs/webhooks.md) ------------------------------------------------------------------------
# Deliveries never go to loopback, link-local, private, multicast or reserved addresses unless
# WEBHOOKS_ALLOW_PRIVATE (tests and the local demo). A failed attempt is tried again after each delay of
# WEBHOOKS_RETRY_SCHEDULE (seconds, comma-separated; the scheduler wakes every ~15 s, so shorter delays wait
# for it); after the last one the delivery is a dead letter. Each attempt waits WEBHOOKS_TIMEOUT seconds at most.
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", default=False)
WEBHOOKS_RETRY_SCHEDULE = os.environ.get("WEBHOOKS_RETRY_SCHEDULE", "5,30,120,600,3600,21600")
WEBHOOKS_TIMEOUT = float(os.environ.get("WEBHOOKS_TIMEOUT") or 10)
# Finished messages (every delivery delivered or dead) older than this are deleted by ``prune_webhooks``.
WEBHOOKS_KEEP_DAYS = env_int("WEBHOOKS_KEEP_DAYS", 30)

# --- Agent liveness (manage.py watch_agents, in the worker role) -----------------------------------------
# A live session's agent is judged every AGENT_WATCH_INTERVAL_SECONDS: degraded when its /health probe fails
# (AGENT_PROBE_TIMEOUT_SECONDS) or it has sent no heartbeat for AGENT_STALE_SECONDS; restarted when both; after
# AGENT_RESTART_LIMIT restarts without recovery the session fails (agent_unresponsive). A restarted agent is
# left alone for AGENT_RESTART_GRACE_SECONDS (it boots, installs, joins again).
AGENT_WATCH_INTERVAL_SECONDS = float(os.environ.get("AGENT_WATCH_INTERVAL_SECONDS") or 2)
# Passed to every agent (its own AGENT_HEARTBEAT_SECONDS): keep it well under AGENT_STALE_SECONDS.
AGENT_HEARTBEAT_SECONDS = float(os.environ.get("AGENT_HEARTBEAT_SECONDS") or 5)
AGENT_STALE_SECONDS = float(os.environ.get("AGENT_STALE_SECONDS") or 15)
AGENT_PROBE_TIMEOUT_SECONDS = float(os.environ.get("AGENT_PROBE_TIMEOUT_SECONDS") or 2)
AGENT_PROBE_CONCURRENCY = env_int("AGENT_PROBE_CONCURRENCY", 32)
AGENT_RESTART_LIMIT = env_int("AGENT_RESTART_LIMIT", 2)
AGENT_RESTART_GRACE_SECONDS = float(os.environ.get("AGENT_RESTART_GRACE_SECONDS") or 45)
# file:update messages the agent has not acknowledged for this long make the session degraded.
AGENT_SYNC_STALL_SECONDS = float(os.environ.get("AGENT_SYNC_STALL_SECONDS") or 10)

# --- Project access -------------------------------------------------------------------------------------
# Who may use a project: ``registry`` (our Project/ProjectMember tables) or ``supabase`` (the frontend's
# projects table, asked as the caller under its own row-level security; PostgreSQL only, velocity.E007).
PROJECT_ACCESS_BACKEND = os.environ.get("PROJECT_ACCESS_BACKEND", "registry").strip().lower()
PROJECT_ACCESS_CACHE_SECONDS = env_int("PROJECT_ACCESS_CACHE_SECONDS", 10)
PROJECT_ACCESS_SUPABASE_TABLE = os.environ.get("PROJECT_ACCESS_SUPABASE_TABLE", "public.projects").strip()
PROJECT_ACCESS_SUPABASE_ID_COLUMN = os.environ.get("PROJECT_ACCESS_SUPABASE_ID_COLUMN", "id").strip()
PROJECT_ACCESS_SUPABASE_TIMEOUT_MS = env_int("PROJECT_ACCESS_SUPABASE_TIMEOUT_MS", 2000)

# --- Supabase / realtime --------------------------------------------------------------------------------
SUPABASE_URL = os.environ.get("SUPABASE_URL", "").rstrip("/")
SUPABASE_ANON_KEY = env_secret("SUPABASE_ANON_KEY")
SUPABASE_SERVICE_ROLE_KEY = env_secret("SUPABASE_SERVICE_ROLE_KEY")
SUPABASE_JWT_SECRET = env_secret("SUPABASE_JWT_SECRET") or (embedded_secret("jwt_secret") if DEBUG else "")
SUPABASE_JWKS_URL = os.environ.get("SUPABASE_JWKS_URL") or (
    f"{SUPABASE_URL}/auth/v1/.well-known/jwks.json" if SUPABASE_URL else ""
)

# Every door checks `aud` (user tokens must carry this one) and, with a Supabase project, `iss`: its Auth
# server, its API keys ("supabase") and the tokens this orchestrator signs itself ("velocity").
SUPABASE_JWT_AUDIENCE = os.environ.get("SUPABASE_JWT_AUDIENCE", "authenticated")
SUPABASE_JWT_ISSUERS = [
    issuer.strip()
    for issuer in os.environ.get(
        "SUPABASE_JWT_ISSUERS", f"{SUPABASE_URL}/auth/v1,supabase,velocity" if SUPABASE_URL else ""
    ).split(",")
    if issuer.strip()
]

# The editor and the agents talk through this: the embedded endpoint unless a Supabase project is set.
REALTIME_URL = os.environ.get("REALTIME_URL") or (
    f"{SUPABASE_URL}/realtime/v1" if SUPABASE_URL else f"{ORCHESTRATOR_URL}/realtime/v1"
)

# --- Embedded realtime endpoint and bridge (realtime_bridge) -------------------------------------------
# The endpoint serves /realtime/v1 when SUPABASE_URL is unset, or always with REALTIME_EMBEDDED_ALWAYS.
REALTIME_EMBEDDED_ALWAYS = env_bool("REALTIME_EMBEDDED_ALWAYS", default=False)
# Limits as a named profile (realtime_bridge/limits.py, docs/realtime.md "Limits"): "supabase" (a Supabase
# project's defaults: 100 events a second per project counting fan-out, 100 joins a second, 100 channels per
# socket, 5 presence messages per channel per 30 s, 3000 KB payloads) or "unlimited" (local benchmarks).
REALTIME_LIMITS_PROFILE = os.environ.get("REALTIME_LIMITS_PROFILE", "supabase").strip() or "supabase"
# Each of these, when set, replaces one number of the profile.
REALTIME_MAX_PAYLOAD_BYTES = env_optional_int("REALTIME_MAX_PAYLOAD_BYTES")
REALTIME_MAX_EVENTS_PER_SECOND = env_optional_int("REALTIME_MAX_EVENTS_PER_SECOND")
REALTIME_MAX_JOINS_PER_SECOND = env_optional_int("REALTIME_MAX_JOINS_PER_SECOND")
REALTIME_MAX_CHANNELS_PER_SOCKET = env_optional_int("REALTIME_MAX_CHANNELS_PER_SOCKET")
REALTIME_MAX_CONCURRENT_USERS = env_optional_int("REALTIME_MAX_CONCURRENT_USERS")
REALTIME_MAX_PRESENCE_EVENTS_PER_SECOND = env_optional_int("REALTIME_MAX_PRESENCE_EVENTS_PER_SECOND")
REALTIME_CLIENT_PRESENCE_MAX_CALLS = env_optional_int("REALTIME_CLIENT_PRESENCE_MAX_CALLS")
# Request bodies on /api/ and /realtime/ (velocity.middleware): a REST broadcast of a full-size realtime
# payload (3000 KB) with its envelope still fits. Django's own limit for request.body follows it.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# A socket whose unsent frames pass this many bytes (a reader that stopped reading) is closed, so a stalled
# client neither delays the fan-out to the others nor grows the server's memory (realtime_bridge/wire.py).
# At least twice REALTIME_MAX_PAYLOAD_BYTES, so one large broadcast alone never trips it.
REALTIME_MAX_SEND_BUFFER_BYTES = env_int("REALTIME_MAX_SEND_BUFFER_BYTES", 8 * 1024 * 1024)
REALTIME_IDLE_TIMEOUT = float(os.environ.get("REALTIME_IDLE_TIMEOUT") or 60)
REALTIME_JOIN_ERROR_DELAY = float(os.environ.get("REALTIME_JOIN_ERROR_DELAY") or 0)
# Realtime waits 2 s (CONNECT_ERROR_BACKOFF_MS) before a refused handshake's 401; 0 here by default.
REALTIME_CONNECT_ERROR_DELAY = float(os.environ.get("REALTIME_CONNECT_ERROR_DELAY") or 0)
REALTIME_BRIDGE_CHANNELS_PER_SOCKET = env_int("REALTIME_BRIDGE_CHANNELS_PER_SOCKET", 100)
# Public channels (`private: false`) on topics no app claims, open to any valid key as on a Supabase project
# that allows public access; project and user topics stay private only either way (realtime_bridge/policies.py).
REALTIME_PUBLIC_CHANNELS = env_bool("REALTIME_PUBLIC_CHANNELS", default=True)

# --- Observability --------------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "info").upper()
LOG_FORMAT = os.environ.get("LOG_FORMAT", "console")
PROMETHEUS_ENABLED = env_bool("PROMETHEUS_ENABLED", default=False)
METRICS_PORT = env_int("METRICS_PORT", 9091)
# When set, ``GET /metrics`` on the web port wants ``Authorization: Bearer <token>``; the METRICS_PORT
# listener is private (Fly scrapes it over the private network) and never asks.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A process started without ``velocity.run`` (manage.py shell, a one-off) must still find the directory.
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

# --- Rollback: legacy previews --------------------------------------------------------------------------
# The Appetize.io app a PreviewFlag routes to "legacy" answers with ({project_id} is filled in).
APPETIZE_APP_URL = os.environ.get("APPETIZE_APP_URL", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "velocity.logging.JsonFormatter"},
        "console": {"()": "velocity.logging.ConsoleFormatter"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "console"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Our request log line replaces Django's and daphne's access logs.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        "daphne.access": {"level": "WARNING"},
        "django_q": {"level": "WARNING" if LOG_LEVEL != "DEBUG" else "DEBUG"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    # Fly's checks, the image's HEALTHCHECK and the metrics scraper speak plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
