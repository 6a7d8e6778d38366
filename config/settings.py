"""Settings for every profile, read from the environment.

Profiles differ only by environment variables:

* ``embedded`` (default when nothing is set): SQLite files under ``VAR_DIR`` for the global
  database and each shard, Celery on the in-memory transport with an in-process worker,
  an in-memory channel layer, console providers.
* ``services``: ``DATABASE_URL`` + ``SHARD_DATABASE_URLS`` (PostgreSQL), ``REDIS_URL`` for the
  broker, the cache, idempotency and the channel layer.
* ``test``: the services profile with local defaults (PostgreSQL and Redis on 127.0.0.1);
  pytest-django creates a test database for the global database and for every shard.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.sharding import build_shard_map

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return default if value is None else int(value)


def env_float(name: str, default: float) -> float:
    value = env(name)
    return default if value is None else float(value)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


PROFILE = env("NOTIFY_PROFILE", "services" if env("DATABASE_URL") else "embedded")
if PROFILE not in {"embedded", "services", "test"}:
    raise ImproperlyConfigured(f"NOTIFY_PROFILE must be embedded, services or test, not {PROFILE!r}")
EMBEDDED = PROFILE == "embedded"

VAR_DIR = Path(env("VAR_DIR", str(BASE_DIR / "var")))

# --- Core Django ---------------------------------------------------------------------------


def _secret_key() -> str:
    configured = env("SECRET_KEY")
    if configured:
        return configured
    if PROFILE == "test":
        return "test-profile-secret-key-not-for-production-use-0123456789"
    if EMBEDDED:
        # The embedded profile is for one machine; keep a random key beside its data.
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file = VAR_DIR / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(50))
        return key_file.read_text().strip()
    raise ImproperlyConfigured("SECRET_KEY must be set in the services profile")


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
HOST = env("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
if HOST not in ("0.0.0.0", "::") and HOST not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(HOST)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "config",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_prometheus",
    "templates_app",
    "preferences",
    "delivery",
    "notifications",
    "campaigns",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Only needed for `collectstatic`; assets are served straight from the installed apps.
STATIC_ROOT = env("STATIC_ROOT")
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A bulk request carries up to 1000 items of up to 16 KB of data each.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)

# --- Databases: one global database plus N shards -----------------------------------------

SHARD_COUNT_DEFAULT = 2
DB_POOL_MAX = env_int("DB_POOL_MAX", 8)


def _postgres(url: str) -> dict:
    config = dj_database_url.parse(url)
    options = config.setdefault("OPTIONS", {})
    # The send path's own statements (server-side binding) are prepared after this many runs,
    # sparing PostgreSQL a parse and plan per notification. Django's ORM queries use
    # client-side binding and are unaffected. Empty disables it (PgBouncer < 1.21 in
    # transaction mode cannot follow prepared statements).
    threshold = env("DB_PREPARE_THRESHOLD", "5")
    options["prepare_threshold"] = int(threshold) if threshold else None
    if env_bool("DB_POOL", False):
        # For ASGI servers, which run each sync view in a new thread: a process-wide pool.
        # (Measured: its background threads cost ~35% per request under gunicorn's threads.)
        options["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX, "timeout": 10}
        config["CONN_MAX_AGE"] = 0
    else:
        # gunicorn threads and Celery processes are long-lived: one persistent connection each.
        config["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 600)
        config["CONN_HEALTH_CHECKS"] = True
    return config


def _sqlite(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _shard_count = env_int("SHARD_COUNT", SHARD_COUNT_DEFAULT)
    DATABASES = {"default": _sqlite(VAR_DIR / "global.sqlite3")}
    for _index in range(_shard_count):
        DATABASES[f"shard_{_index}"] = _sqlite(VAR_DIR / f"shard_{_index}.sqlite3")
else:
    _local = "postgres://postgres@127.0.0.1:5432"
    _default_url = env("DATABASE_URL", f"{_local}/notify" if PROFILE == "test" else None)
    _shard_urls = env_list(
        "SHARD_DATABASE_URLS",
        f"{_local}/notify_shard_0,{_local}/notify_shard_1" if PROFILE == "test" else "",
    )
    if not _default_url or not _shard_urls:
        raise ImproperlyConfigured("The services profile needs DATABASE_URL and SHARD_DATABASE_URLS")
    DATABASES = {"default": _postgres(_default_url)}
    for _index, _url in enumerate(_shard_urls):
        DATABASES[f"shard_{_index}"] = _postgres(_url)

SHARD_ALIASES = [alias for alias in DATABASES if alias != "default"]
# bucket = stable_hash(user_id) % 1024; each inclusive bucket range belongs to one shard.
# Override with e.g. SHARD_BUCKET_MAP="0-511:shard_0,512-1023:shard_1".
SHARD_BUCKET_MAP = build_shard_map(SHARD_ALIASES, env("SHARD_BUCKET_MAP"))
DATABASE_ROUTERS = ["config.db_router.ShardRouter"]

# --- Redis, cache, channel layer ------------------------------------------------------------

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/15" if PROFILE == "test" else None)
if PROFILE == "services" and not REDIS_URL:
    raise ImproperlyConfigured("The services profile needs REDIS_URL")
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 2.0)

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# How long API clients, notification types and templates are cached in each process.
# Saves through the ORM clear the local copy at once; other processes see a change within this.
CONFIG_CACHE_SECONDS = env_float("CONFIG_CACHE_SECONDS", 5.0)

# --- Celery -----------------------------------------------------------------------------------

CHANNELS = ("email", "sms", "push", "inapp")
PRIORITIES = ("critical", "high", "normal", "low")  # strict consumption order
CORE_QUEUE = env("CORE_QUEUE", "core")
# Delivery queues are named <prefix><channel>.<priority> (see config.queues).
QUEUE_PREFIX = env("QUEUE_PREFIX", "")

CELERY_BROKER_URL = env("CELERY_BROKER_URL", "memory://localhost/" if EMBEDDED else REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Consume a worker's queues in the order given (critical first), never round-robin.
    "queue_order_strategy": "priority",
    # A reserved message of a worker that died comes back after this; the delivery lease
    # sweep usually recovers the delivery earlier.
    "visibility_timeout": env_int("BROKER_VISIBILITY_TIMEOUT", 900),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # Connecting to publish fails fast too (one retry): the outbox sweep republishes later,
    # so an API request never waits long on an unreachable broker.
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.2,
}
if EMBEDDED:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.05}
CELERY_TASK_DEFAULT_QUEUE = CORE_QUEUE
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# A publish that cannot reach the broker fails fast: the outbox sweep republishes later,
# so there is no reason to hold an API request open waiting for the broker.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_BEAT_SCHEDULE_FILENAME = env("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule"))

# --- Delivery ---------------------------------------------------------------------------------

SWEEP_INTERVAL_SECONDS = env_float("SWEEP_INTERVAL_SECONDS", 1.0)
# A claimed delivery belongs to its worker for this long; after that the sweep hands it out again.
DELIVERY_LEASE_SECONDS = env_float("DELIVERY_LEASE_SECONDS", 120.0)
# A delivery still queued this long after being published is published again; each time it
# waits as long again as it has been queued (doubling), up to the cap, so a long backlog
# behind stopped workers is republished a few times, not every few minutes.
STUCK_QUEUED_AFTER_SECONDS = env_float("STUCK_QUEUED_AFTER_SECONDS", 600.0)
REPUBLISH_MAX_SPACING_SECONDS = env_float("REPUBLISH_MAX_SPACING_SECONDS", 6 * 3600.0)
SWEEP_BATCH_LIMIT = env_int("SWEEP_BATCH_LIMIT", 5000)
# Deliveries per published task (FCM send_each takes 500, SendGrid 1000 personalizations).
DELIVERY_BATCH_SIZE = {"email": 100, "sms": 50, "push": 500, "inapp": 500}
CELERY_BEAT_SCHEDULE = {
    "sweep-deliveries": {
        "task": "delivery.sweep",
        "schedule": SWEEP_INTERVAL_SECONDS,
        "options": {"queue": CORE_QUEUE, "expires": max(5.0, SWEEP_INTERVAL_SECONDS * 5)},
    },
}

# Retry policy per channel: attempts in all, first backoff, multiplier, cap (seconds); 25% jitter.
RETRY_POLICIES = {
    "push": {"max_attempts": 4, "base": 1, "factor": 2, "cap": 30},
    "email": {"max_attempts": 6, "base": 10, "factor": 3, "cap": 3600},
    "sms": {"max_attempts": 4, "base": 30, "factor": 2, "cap": 300},
    "inapp": {"max_attempts": 4, "base": 1, "factor": 2, "cap": 10},
}
RETRY_JITTER = 0.25

# One provider per channel: dotted path of a class implementing delivery.providers.base.Provider.
NOTIFY_PROVIDERS = {
    channel: env(f"{channel.upper()}_PROVIDER", "delivery.providers.console.ConsoleProvider")
    for channel in CHANNELS
}
# Development knob: make the console provider take this long per batch (used to test crashes).
CONSOLE_PROVIDER_DELAY_SECONDS = env_float("CONSOLE_PROVIDER_DELAY_SECONDS", 0.0)

# --- API --------------------------------------------------------------------------------------

NOTIFICATION_DATA_MAX_BYTES = 16 * 1024
SEND_AT_MAX_AHEAD_DAYS = 7
# Seconds a request waits for a concurrent request holding the same idempotency key.
IDEMPOTENCY_WAIT_SECONDS = env_float("IDEMPOTENCY_WAIT_SECONDS", 3.0)
IDEMPOTENCY_TTL_SECONDS = 24 * 3600

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["notifications.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["notifications.api.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "notifications.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Notification service API",
    "DESCRIPTION": "Send notifications by email, SMS, push and in-app; track their delivery.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema and Swagger UI are public documentation; the API itself needs a key.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# --- Demo data (embedded profile) ------------------------------------------------------------

DEMO_API_KEY = env("DEMO_API_KEY", "nk_demo0000_localdemokeyforembeddedprofileonly")
DEMO_ADMIN_USERNAME = env("DEMO_ADMIN_USERNAME", "admin")
DEMO_ADMIN_PASSWORD = env("DEMO_ADMIN_PASSWORD", "admin")

# --- Logging ----------------------------------------------------------------------------------

LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        # One line per task received/succeeded: useful when debugging, noise at volume.
        "celery.app.trace": {"level": env("CELERY_TASK_LOG_LEVEL", "WARNING")},
        "celery.worker.strategy": {"level": env("CELERY_TASK_LOG_LEVEL", "WARNING")},
    },
}
