"""ResolutionFlow settings: one file, driven by the environment.

Every variable is parsed strictly: a bad value stops start-up with one line that names it
(see ``resolutionflow.env``). The defaults are the embedded ones ``make run`` uses:
SQLite under var/, Celery tasks inline, events in-process, console email, offline AI.
"""

from pathlib import Path

from django.utils.csp import CSP

from resolutionflow.env import (
    ConfigError,
    env_bool,
    env_choice,
    env_database,
    env_email,
    env_float,
    env_grip_url,
    env_int,
    env_list,
    env_rate,
    env_redis_url,
    env_site_url,
    env_str,
    env_time_zone,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", default=False)
RF_REQUIRE_SERVICES = env_bool("RF_REQUIRE_SERVICES", default=False)

SECRET_KEY = env_str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError("SECRET_KEY is required when DEBUG is off (set DEBUG=1 for development)")
    SECRET_KEY = "django-insecure-development-only-key-not-for-production-use-0123456789"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_eventstream",
    "resolutionflow",
    "flowpilot",
    "escalations",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "resolutionflow.middleware.PublishEventsAfterResponseMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "resolutionflow.middleware.ResponsePolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "resolutionflow.middleware.HtmxMessagesMiddleware",
]

ROOT_URLCONF = "resolutionflow.urls"
ASGI_APPLICATION = "resolutionflow.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "escalations.context_processors.bell",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", default_sqlite=VAR_DIR / "db.sqlite3")}

AUTH_USER_MODEL = "resolutionflow.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# collectstatic writes here: a writable folder outside the checkout in production.
STATIC_ROOT = Path(env_str("STATIC_ROOT", default="") or VAR_DIR / "staticfiles")
# Under DEBUG, WhiteNoise serves straight from the finders (autoreload, no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Content-Security-Policy from Django's own support: no inline script, nonces where needed.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

# Security: strict in production, relaxed only for local development.
SESSION_COOKIE_HTTPONLY = True
# Idle timeout: a session ends this long after its last request (resolutionflow/sessions.py
# slides it, saving at most every RF_SESSION_REFRESH_SECONDS); open streams re-check it.
SESSION_COOKIE_AGE = env_int("RF_IDLE_TIMEOUT_SECONDS", default=8 * 3600, minimum=60)
RF_SESSION_REFRESH_SECONDS = env_int("RF_SESSION_REFRESH_SECONDS", default=300, minimum=0)
RF_STREAM_SESSION_CHECK_SECONDS = env_float(
    "RF_STREAM_SESSION_CHECK_SECONDS", default=60.0, minimum=0.1
)
# Presence ("Sky is viewing", escalations/presence.py): a tab that stops beating (every 10 s)
# is gone this long after its last beat, plus at most one drain period (5 s).
RF_PRESENCE_TTL_SECONDS = env_int("RF_PRESENCE_TTL_SECONDS", default=20, minimum=11, maximum=25)
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from <body hx-headers>, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Redis: unset → Celery runs tasks inline and events stay in this process.
REDIS_URL = env_redis_url("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# A dead broker must never hang a request: fail fast, the outbox keeps the work.
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 1.0,
    "max_retries": 0,
    "visibility_timeout": 600,
}
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BEAT_SCHEDULE = {
    "drain-outbox": {"task": "resolutionflow.tasks.drain_outbox", "schedule": 5.0},
}
# Work that waits on other people's servers never shares workers with the event path: a
# slow mail relay or AI engine must not stop the drain (publishing, resyncs, the sweeps).
# The events queue is the default; `celery worker -Q events` and `-Q email,outbound`
# (docs/OPERATIONS.md, Procfile) run them apart.
CELERY_TASK_DEFAULT_QUEUE = "events"
CELERY_TASK_ROUTES = {
    "escalations.tasks.send_escalation_email": {"queue": "email"},
    "escalations.refresh_assessment": {"queue": "outbound"},
    # Slow database work, not part of the event path either.
    "analytics.tasks.refresh_rollups": {"queue": "outbound"},
}
# The beat keeps its schedule in memory: a 5-second drain has nothing worth persisting, and
# the default shelve file (SQLite under Python 3.13) can stay locked after a killed worker,
# so that the restarted beat dies with "locking protocol" and the drain stops.
CELERY_BEAT_SCHEDULER = "celery.beat:Scheduler"

# Rate limits (resolutionflow/ratelimit.py; docs/OPERATIONS.md "Limits"). Counted in Redis when
# REDIS_URL is set (every web process together), else in this process's memory (embedded).
_RATELIMIT_CACHE = (
    {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "rf",
        # A slow Redis must not hold sign-in: the limiter lets requests through instead.
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"}
)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ratelimit": _RATELIMIT_CACHE,
}
RF_RATE_LIMITS = {
    "sessions": env_rate("RF_RATE_SESSIONS", default="30/h"),
    "messages": env_rate("RF_RATE_MESSAGES", default="12/m"),
    "escalations": env_rate("RF_RATE_ESCALATIONS", default="20/h"),
    # An open handoff screen beats every 10 s: 60/m is six such tabs and their refreshes.
    "presence": env_rate("RF_RATE_PRESENCE", default="60/m"),
}
RF_LOGIN_FREE_FAILURES_PER_NAME = env_int("RF_LOGIN_FREE_FAILURES_PER_NAME", default=5, minimum=1)
RF_LOGIN_FREE_FAILURES_PER_ADDRESS = env_int(
    "RF_LOGIN_FREE_FAILURES_PER_ADDRESS", default=20, minimum=1
)
RF_LOGIN_LOCKOUT_SECONDS = env_int("RF_LOGIN_LOCKOUT_SECONDS", default=30, minimum=1)
RF_LOGIN_LOCKOUT_MAX_SECONDS = env_int("RF_LOGIN_LOCKOUT_MAX_SECONDS", default=900, minimum=1)
RF_LOGIN_FAILURE_MEMORY_SECONDS = env_int(
    "RF_LOGIN_FAILURE_MEMORY_SECONDS", default=3600, minimum=60
)

# Server-sent events (django-eventstream). Events are stored for Last-Event-ID replay.
EVENTSTREAM_STORAGE_CLASS = "django_eventstream.storage.DjangoModelStorage"
EVENTSTREAM_CHANNELMANAGER_CLASS = "escalations.channels.ChannelManager"
if REDIS_URL:
    from redis.connection import parse_url as _parse_redis_url

    EVENTSTREAM_REDIS = {
        **_parse_redis_url(REDIS_URL),
        "socket_connect_timeout": 1.0,
        "socket_timeout": 1.0,
    }

# Pushpin in front (resolutionflow/grip.py): stream requests that Pushpin signed get GRIP
# hold instructions (Pushpin holds the open stream, not a web-process thread) and the outbox
# publishes every event to Pushpin's control port as well. Unset: streams are held here.
GRIP_URL = env_grip_url("GRIP_URL")
if GRIP_URL:
    MIDDLEWARE.insert(1, "django_grip.GripMiddleware")

# Email: console by default; EMAIL_URL=smtp://user:pass@host:587/?tls=True for real mail.
MAILERS = env_email("EMAIL_URL", default="console://")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", default="ResolutionFlow <noreply@localhost>")
SITE_URL = env_site_url("SITE_URL", default="http://127.0.0.1:8000")

# AI: the offline engine unless an Anthropic key is set.
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", default="")
RF_AI_MODEL = env_str("RF_AI_MODEL", default="claude-sonnet-4-5")
RF_AI_TIMEOUT = env_float("RF_AI_TIMEOUT", default=20.0, minimum=0.1)
RF_AI_MAX_RETRIES = env_int("RF_AI_MAX_RETRIES", default=2, minimum=0)
RF_ASSESSMENT_TIMEOUT = env_float("RF_ASSESSMENT_TIMEOUT", default=5.0, minimum=0.1)
RF_ASSESSMENT_REFRESH_SECONDS = env_int("RF_ASSESSMENT_REFRESH_SECONDS", default=30, minimum=0)

LOG_LEVEL = env_choice(
    "LOG_LEVEL", default="INFO", choices={"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django_eventstream": {"level": "WARNING"},
        # Refusals (403, 404, 409) are answers, not incidents; 5xx are still logged.
        "django.request": {"level": "ERROR"},
        # Embedded mode runs tasks inline: a line per task would drown the server's console.
        **(
            {"celery.app.trace": {"level": "WARNING"}, "kombu.connection": {"level": "ERROR"}}
            if CELERY_TASK_ALWAYS_EAGER
            else {}
        ),
    },
}
