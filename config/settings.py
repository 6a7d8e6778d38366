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

import hashlib
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.environment import env, env_bool, env_float, env_int, env_list, postgres_database, sqlite_database
from config.sharding import build_shard_map

BASE_DIR = Path(__file__).resolve().parent.parent


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
    # config first: its runserver (a warning around Daphne's) must shadow Daphne's.
    "config",
    "daphne",
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
# The largest body Django reads for views that do not set their own limit (the admin's forms).
# The API's endpoints declare theirs (API_*_MAX_BODY_BYTES below).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)

# --- Databases: one global database plus N shards -----------------------------------------

SHARD_COUNT_DEFAULT = 2
DB_POOL_MAX = env_int("DB_POOL_MAX", 8)


if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _shard_count = env_int("SHARD_COUNT", SHARD_COUNT_DEFAULT)
    DATABASES = {"default": sqlite_database(VAR_DIR / "global.sqlite3")}
    for _index in range(_shard_count):
        DATABASES[f"shard_{_index}"] = sqlite_database(VAR_DIR / f"shard_{_index}.sqlite3")
else:
    _local = "postgres://postgres@127.0.0.1:5432"
    _default_url = env("DATABASE_URL", f"{_local}/notify" if PROFILE == "test" else None)
    _shard_urls = env_list(
        "SHARD_DATABASE_URLS",
        f"{_local}/notify_shard_0,{_local}/notify_shard_1" if PROFILE == "test" else "",
    )
    if not _default_url or not _shard_urls:
        raise ImproperlyConfigured("The services profile needs DATABASE_URL and SHARD_DATABASE_URLS")
    DATABASES = {"default": postgres_database(_default_url, pool_max=DB_POOL_MAX)}
    for _index, _url in enumerate(_shard_urls):
        DATABASES[f"shard_{_index}"] = postgres_database(_url, pool_max=DB_POOL_MAX)

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
    # Redis pub/sub channels ignore the database number in REDIS_URL: two deployments (or test
    # runs, benchmarks) on one Redis server see each other's frames for the same user ids
    # unless each has its own prefix.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env("CHANNEL_LAYER_PREFIX", "asgi")},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # In memory, publishable from the in-process worker's thread (config/channel_layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "config.channel_layers.ServerLoopInMemoryChannelLayer"}}

# How long API clients, notification types and templates are cached in each process.
# Saves through the ORM clear the local copy at once; other processes see a change within this.
CONFIG_CACHE_SECONDS = env_float("CONFIG_CACHE_SECONDS", 5.0)

# --- Celery -----------------------------------------------------------------------------------

CHANNELS = ("email", "sms", "push", "inapp")
PRIORITIES = ("critical", "high", "normal", "low")  # strict consumption order
CORE_QUEUE = env("CORE_QUEUE", "core")
# The outbox sweep and other upkeep: its own queue, so fan-out work on core never delays it.
MAINTENANCE_QUEUE = env("MAINTENANCE_QUEUE", "maintenance")
# Delivery queues are named <prefix><channel>.<priority> (see config.queues).
QUEUE_PREFIX = env("QUEUE_PREFIX", "")

CELERY_BROKER_URL = env("CELERY_BROKER_URL", "memory://localhost/" if EMBEDDED else REDIS_URL)
# redis:// through kombu's Redis transport with one fix, so a worker survives a broker outage
# (config/broker.py). CELERY_BROKER_TRANSPORT=redis selects kombu's own; rediss:// (TLS)
# keeps kombu's, which sets TLS up from that scheme.
CELERY_BROKER_TRANSPORT = env(
    "CELERY_BROKER_TRANSPORT", "config.broker:Transport" if (CELERY_BROKER_URL or "").startswith("redis://") else None
)
# A worker whose broker goes away keeps reconnecting (every few seconds) until it is back,
# at startup and after losing the connection; it never gives up and exits.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
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
# Workers keep their database connections between tasks. Celery's Django fixup would close
# them all before and after every task (each task then reconnected to its shard and the
# global database: ~200 ms instead of ~13 ms per task); past this many tasks it closes them
# once, otherwise config.celery applies CONN_MAX_AGE and CONN_HEALTH_CHECKS per task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1_000_000)
# A task that fails on a database or broker error is retried after this backoff (doubling
# from 1 s, with jitter, up to the cap), as often as needed; must stay well below the Redis
# visibility timeout, or Redis hands the waiting retry to a second worker.
TASK_RETRY_BACKOFF_MAX_SECONDS = env_float("TASK_RETRY_BACKOFF_MAX_SECONDS", 60.0)
if "visibility_timeout" in CELERY_BROKER_TRANSPORT_OPTIONS and (
    TASK_RETRY_BACKOFF_MAX_SECONDS * 2 > CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
):
    raise ImproperlyConfigured("TASK_RETRY_BACKOFF_MAX_SECONDS must stay below half of BROKER_VISIBILITY_TIMEOUT")
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# A publish that cannot reach the broker fails fast: the outbox sweep republishes later,
# so there is no reason to hold an API request open waiting for the broker.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
CELERY_BEAT_SCHEDULER = "config.celery:BeatScheduler"
CELERY_BEAT_SCHEDULE_FILENAME = env("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule"))

# --- Delivery ---------------------------------------------------------------------------------

SWEEP_INTERVAL_SECONDS = env_float("SWEEP_INTERVAL_SECONDS", 1.0)
# A claimed delivery belongs to its worker for this long; after that the sweep hands it out
# again (a worker killed mid-send delays its batch this long). Providers must time out well
# within it.
DELIVERY_LEASE_SECONDS = env_float("DELIVERY_LEASE_SECONDS", 30.0)
# A queued delivery whose broker queue is empty is presumed lost once it was published this
# long ago (a worker would have claimed it by then); critical is noticed first.
REPUBLISH_GRACE_SECONDS = {
    "critical": env_float("REPUBLISH_GRACE_CRITICAL_SECONDS", 2.0),
    "high": env_float("REPUBLISH_GRACE_HIGH_SECONDS", 5.0),
    "normal": env_float("REPUBLISH_GRACE_NORMAL_SECONDS", 10.0),
    "low": env_float("REPUBLISH_GRACE_LOW_SECONDS", 20.0),
}
# The backstop for a message lost while its queue never empties: a delivery still queued this
# long after being published is published again, then after as long again as it has existed
# (doubling) up to the cap. A backlog draining for hours is republished a few times at most.
STUCK_QUEUED_AFTER_SECONDS = env_float("STUCK_QUEUED_AFTER_SECONDS", 3600.0)
REPUBLISH_MAX_SPACING_SECONDS = env_float("REPUBLISH_MAX_SPACING_SECONDS", 24 * 3600.0)
SWEEP_BATCH_LIMIT = env_int("SWEEP_BATCH_LIMIT", 5000)
# A drain task sends one queue's deliveries batch after batch for at most this long, then
# hands its place back to the worker's queue order (critical first).
DRAIN_MAX_SECONDS = env_float("DRAIN_MAX_SECONDS", 2.0)
# Deliveries per batch (FCM send_each takes 500, SendGrid 1000 personalizations); override per
# channel with DELIVERY_BATCH_SIZES=email=1,push=50 (bench/delivery compares batched with one by one).
DELIVERY_BATCH_SIZE = {"email": 100, "sms": 50, "push": 500, "inapp": 500} | {
    name.strip(): int(size) for name, _, size in (item.partition("=") for item in env_list("DELIVERY_BATCH_SIZES"))
}
if set(DELIVERY_BATCH_SIZE) != set(CHANNELS) or min(DELIVERY_BATCH_SIZE.values()) < 1:
    raise ImproperlyConfigured(f"DELIVERY_BATCH_SIZES takes channel=size (size >= 1) for {', '.join(CHANNELS)}")
# One sweep task per shard: a shard that is down only delays its own sweep.
CELERY_BEAT_SCHEDULE = {
    f"sweep-{alias}": {
        "task": "delivery.sweep_shard",
        "schedule": SWEEP_INTERVAL_SECONDS,
        "args": (alias,),
        "options": {"queue": MAINTENANCE_QUEUE, "expires": max(5.0, SWEEP_INTERVAL_SECONDS * 5)},
    }
    for alias in SHARD_ALIASES
}

# Retry policy per channel, seed 004's numbers and names (delays in seconds). ``max_retries``
# counts retries after the first attempt, as the seed's ``max_retries`` does: push is attempted
# at most 4 times in all (1 + 3 retries), email 6, sms 4. Retry n (1-based) waits
# initial_delay x multiplier^(n-1), capped at max_delay, then +-jitter of that; a provider's own
# Retry-After is the floor (delivery.retry). In-app is not in the seed: it retries like push,
# capped at 10 s (its only failure is the channel layer being briefly unreachable).
RETRY_POLICIES = {
    "push": {"max_retries": 3, "initial_delay": 1.0, "multiplier": 2, "max_delay": 30.0, "jitter": 0.25},
    "email": {"max_retries": 5, "initial_delay": 10.0, "multiplier": 3, "max_delay": 3600.0, "jitter": 0.25},
    "sms": {"max_retries": 3, "initial_delay": 30.0, "multiplier": 2, "max_delay": 300.0, "jitter": 0.25},
    "inapp": {"max_retries": 3, "initial_delay": 1.0, "multiplier": 2, "max_delay": 10.0, "jitter": 0.25},
}

# Providers by name (or give a dotted path of a class implementing
# delivery.providers.base.Provider wherever a name is accepted).
NOTIFY_PROVIDER_CLASSES = {
    "console": "delivery.providers.console.ConsoleProvider",
    "sendgrid": "delivery.providers.sendgrid.SendGridProvider",
    "twilio": "delivery.providers.twilio.TwilioProvider",
    "fcm": "delivery.providers.fcm.FcmProvider",
    "inapp": "delivery.providers.inapp.InAppProvider",
}
# Each channel's providers in order of preference, e.g. EMAIL_PROVIDERS=sendgrid,console: the
# next takes over while one is unavailable (its circuit is open). Console by default in every
# profile; a configured provider without its credentials stops every process at start-up.
NOTIFY_PROVIDERS = {
    channel: env_list(f"{channel.upper()}_PROVIDERS")
    or [env(f"{channel.upper()}_PROVIDER", "inapp" if channel == "inapp" else "console")]
    for channel in CHANNELS
}
# Each call to a provider's API must finish within this (well within the delivery lease, so
# a slow provider never lets a batch be claimed and sent twice).
PROVIDER_TIMEOUT_SECONDS = env_float("PROVIDER_TIMEOUT_SECONDS", 10.0)
# Circuit breaker per provider (state shared in Redis): this many consecutive failed calls
# open it for the cool-down, then one probe call decides.
CIRCUIT_FAILURE_THRESHOLD = env_int("CIRCUIT_FAILURE_THRESHOLD", 5)
CIRCUIT_COOLDOWN_SECONDS = env_float("CIRCUIT_COOLDOWN_SECONDS", 30.0)
# Token bucket per provider (shared in Redis): messages per second, e.g.
# PROVIDER_RATES=twilio=10,sendgrid=600; a bucket holds PROVIDER_BURST_SECONDS of its rate.
PROVIDER_RATES = {"twilio": 10.0} | {
    name.strip(): float(rate) for name, _, rate in (item.partition("=") for item in env_list("PROVIDER_RATES"))
}
PROVIDER_BURST_SECONDS = env_float("PROVIDER_BURST_SECONDS", 1.0)
# A drain that finds its provider's bucket empty comes back once this much of the rate has
# refilled (SMS at 10/s: every 0.5 s for 5), not for every single token: one task per message
# cost ~60 ms of worker CPU per SMS. Never above PROVIDER_BURST_SECONDS (the bucket's size).
RATE_LIMITED_BATCH_SECONDS = min(env_float("RATE_LIMITED_BATCH_SECONDS", 0.5), PROVIDER_BURST_SECONDS)
if PROVIDER_TIMEOUT_SECONDS * 2 >= DELIVERY_LEASE_SECONDS:
    raise ImproperlyConfigured("PROVIDER_TIMEOUT_SECONDS must be under half of DELIVERY_LEASE_SECONDS")
# Provider credentials (a channel configured for a provider without them stops start-up).
SENDGRID_API_KEY = env("SENDGRID_API_KEY", "")
SENDGRID_FROM_EMAIL = env("SENDGRID_FROM_EMAIL", "")
SENDGRID_API_HOST = env("SENDGRID_API_HOST", "https://api.sendgrid.com")  # another host: a proxy or a fake
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM = env("TWILIO_FROM", "")  # a number in E.164 or a messaging service SID (MG...)
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL", "")  # empty: Twilio's own hosts
FIREBASE_CREDENTIALS = env("FIREBASE_CREDENTIALS", "")  # path of the service-account JSON file
# Where providers reach this service from outside: Twilio's status callback URL is built from
# it, and a Twilio signature is checked against it (never against the Host header a client sent).
PUBLIC_BASE_URL = (env("PUBLIC_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
# manage.py prune_devices: devices not seen for this many days, or failing this many sends in a row.
DEVICE_PRUNE_UNSEEN_DAYS = env_int("DEVICE_PRUNE_UNSEEN_DAYS", 90)
DEVICE_PRUNE_MAX_FAILURES = env_int("DEVICE_PRUNE_MAX_FAILURES", 10)

# --- Provider webhooks (delivery.webhooks) ---------------------------------------------------

# SendGrid's signed event webhook: the verification key from Mail Settings (base64 DER, as
# SendGrid shows it). Unset: every event POST is refused (403).
SENDGRID_WEBHOOK_PUBLIC_KEY = env("SENDGRID_WEBHOOK_PUBLIC_KEY", "") or ""
# A signed SendGrid batch older (or further ahead) than this is refused: a captured request
# cannot be replayed later.
WEBHOOK_MAX_AGE_SECONDS = env_int("WEBHOOK_MAX_AGE_SECONDS", 300)
# SendGrid posts batches of up to ~768 KB.
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)

# Development knob: make the console provider take this long per batch (used to test crashes).
CONSOLE_PROVIDER_DELAY_SECONDS = env_float("CONSOLE_PROVIDER_DELAY_SECONDS", 0.0)

# --- API --------------------------------------------------------------------------------------

NOTIFICATION_DATA_MAX_BYTES = 16 * 1024
SEND_AT_MAX_AHEAD_DAYS = 7
# Seconds a request waits for a concurrent request holding the same idempotency key.
IDEMPOTENCY_WAIT_SECONDS = env_float("IDEMPOTENCY_WAIT_SECONDS", 3.0)
IDEMPOTENCY_TTL_SECONDS = 24 * 3600

# Request bodies are refused (413) from their Content-Length, before anything reads them: a
# single send is 16 KB of data plus a few short fields; a bulk request up to 1000 of those.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 64 * 1024)
API_SEND_MAX_BODY_BYTES = env_int("API_SEND_MAX_BODY_BYTES", 64 * 1024)
API_BULK_MAX_BODY_BYTES = env_int("API_BULK_MAX_BODY_BYTES", 1000 * 18 * 1024)
# Check every API answer against the model its operation documents; a mismatch is a 500, so a
# drift between the OpenAPI schema and the answers fails the tests. It costs ~10 ms on a
# 1000-item bulk answer, so the services profile leaves it off.
API_VALIDATE_RESPONSES = env_bool("API_VALIDATE_RESPONSES", PROFILE != "services")

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
    # JSON Schema 2020-12, as pydantic writes it (``type: "null"`` for optional fields).
    "OAS_VERSION": "3.1.0",
    # Request and response bodies are distinct pydantic models already (each published under
    # its own name, in the mode it is used: validation for requests, serialization for answers).
    "COMPONENT_SPLIT_REQUEST": False,
    # The schema and Swagger UI are public documentation; the API itself needs a key.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# --- End-user tokens (bell, inbox, preferences) ---------------------------------------------

# HS256 signing keys, newest first: tokens are signed with the first and verified with any, so
# a key is rotated by putting the new one first and dropping the old one a token lifetime
# later. Default: one key derived from SECRET_KEY.
USER_TOKEN_KEYS = env_list("USER_TOKEN_KEYS") or [
    hashlib.sha256(f"notify-user-tokens:{SECRET_KEY}".encode()).hexdigest()
]
USER_TOKEN_TTL_SECONDS = env_int("USER_TOKEN_TTL_SECONDS", 3600)
USER_TOKEN_MAX_TTL_SECONDS = env_int("USER_TOKEN_MAX_TTL_SECONDS", 24 * 3600)

# --- In-app real time (the bell) ----------------------------------------------------------------

# A live connection counts as present for this long after its last heartbeat; connections
# refresh every PRESENCE_HEARTBEAT_SECONDS (and on every client ping).
PRESENCE_TTL_SECONDS = env_float("PRESENCE_TTL_SECONDS", 60.0)
PRESENCE_HEARTBEAT_SECONDS = env_float("PRESENCE_HEARTBEAT_SECONDS", 20.0)
# A WebSocket must authenticate (token in the query string or first message) within this.
INAPP_AUTH_TIMEOUT_SECONDS = env_float("INAPP_AUTH_TIMEOUT_SECONDS", 10.0)
# Most notifications one resume (or one SSE reconnect) replays; older ones are in the inbox.
INAPP_REPLAY_LIMIT = env_int("INAPP_REPLAY_LIMIT", 500)
INBOX_PAGE_SIZE = env_int("INBOX_PAGE_SIZE", 20)
INBOX_MAX_PAGE_SIZE = env_int("INBOX_MAX_PAGE_SIZE", 100)

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
    "filters": {
        "demote_beat_ticks": {"()": "config.log.DemoteBeatTicks"},
        # During an outage: the first error with its traceback, then a count per interval.
        "summarize_repeats": {"()": "config.log.SummarizeRepeats", "interval": env_float("LOG_REPEAT_INTERVAL", 10.0)},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["summarize_repeats"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # 4xx answers are in the access log already (one line per request); 5xx still log here.
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        # The Twilio SDK logs every request and response at INFO (with the recipient's number);
        # SendGrid's HTTP client logs request headers (the API key) and bodies at DEBUG.
        "twilio": {"level": "WARNING"},
        "python_http_client": {"level": "WARNING"},
        "celery": {"level": env("CELERY_LOG_LEVEL", "INFO")},
        # Beat's "Sending due task" line (every second for the sweep) only at DEBUG.
        "celery.beat": {"filters": ["demote_beat_ticks"]},
        # One line per task received/succeeded: useful when debugging, noise at volume.
        "celery.app.trace": {"level": env("CELERY_TASK_LOG_LEVEL", "WARNING")},
        "celery.worker.strategy": {"level": env("CELERY_TASK_LOG_LEVEL", "WARNING")},
        # `serve`'s access log: method, path (no query string), status, duration.
        "config.access": {"level": env("ACCESS_LOG_LEVEL", "INFO")},
    },
}
