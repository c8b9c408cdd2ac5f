"""Settings for leadcrm. Every value comes from the environment; see .env.example and README."""

import datetime
import secrets
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static

from .storage_settings import STORAGE_VARIABLES, default_storage_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if env.bool("DJANGO_READ_DOT_ENV_FILE", default=True) and (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

# A development key exists only in DEBUG mode; production must bring its own.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY and env.bool("DJANGO_ALLOW_NO_SECRET_KEY", default=False):
    SECRET_KEY = secrets.token_urlsafe(50)  # throwaway, for commands that never sign (makemigrations)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable "
            "(50+ random characters), or DEBUG=true for local development."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production-0123456789"  # noqa: S105

# Public base URL of this site, for absolute links (demo pre-landers, later emails and postbacks).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Unfold's templates and admin site replace Django's; it must come before django.contrib.admin.
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.inlines",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Staff login: lockout after failed passwords (axes) and a second factor (django-otp).
    "leadcrm.staff_login.library_apps.LoginLockoutsConfig",  # axes
    "django_otp",
    "leadcrm.staff_login.library_apps.TwoFactorAppsConfig",  # django_otp.plugins.otp_totp
    "django_otp.plugins.otp_static",
    "django_celery_beat",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "campaigns",
    "leads",
    "nurture",
    "reporting",
    "leadcrm.staff_login",
    # The audit trail of changes (django-auditlog) and the access log of reads of personal data.
    "auditlog",
    "leadcrm.audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "leadcrm.content_security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Names the staff member behind each change in the audit trail (leadcrm/audit/middleware.py).
    "leadcrm.audit.middleware.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "leadcrm.staff_login.middleware.SecondFactorMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "leadcrm.middleware.ApiRequestMiddleware",
    # Last, as axes asks: it turns a login refused for a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "leadcrm.urls"
WSGI_APPLICATION = "leadcrm.wsgi.application"
ASGI_APPLICATION = "leadcrm.asgi.application"

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
                "csp.context_processors.nonce",
            ],
            "libraries": {"admin_json": "leadcrm.admin_json"},
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a kept connection is checked after a database restart
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server, worker and beat share one SQLite file.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
# Audience exports and other media: MEDIA_ROOT, or a private S3-compatible bucket once
# AWS_STORAGE_BUCKET_NAME is set (leadcrm/storage_settings.py; variables in .env.example).
STORAGES = {
    "default": default_storage_config({name: env.str(name, default="") for name in STORAGE_VARIABLES}),
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"

# --- Staff login ---------------------------------------------------------------------------------
# Axes checks every password login first; it never sees API keys or staff tokens, which do not log in.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# This many wrong passwords for one username from one address lock that pair out for the cool-off;
# other addresses (and other usernames) are not locked, so guesses from elsewhere never lock out the
# real user. Behind a proxy this needs CLIENT_IP_HEADER, or every login comes from the proxy's address.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_MINUTES = env.int("AXES_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Attempts during a lockout do not restart it, so the page can say when it ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# The address as click tracking and the API see it: CLIENT_IP_HEADER from the proxy, else the socket.
AXES_CLIENT_IP_CALLABLE = "campaigns.visitor.client_ip"
AXES_LOCKOUT_CALLABLE = "leadcrm.staff_login.views.locked_out"
AXES_VERBOSE = False  # no banner at every start; its log lines mask usernames and addresses anyway
# A second factor (an authenticator app, with backup codes) is required of superusers and managers
# when this is on; other staff may turn it on for themselves.
REQUIRE_STAFF_2FA = env.bool("REQUIRE_STAFF_2FA", default=not DEBUG)
OTP_TOTP_ISSUER = "leadcrm"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a device's key

# --- Audit trail ----------------------------------------------------------------------------------
# The models recorded and the fields masked or left out are listed in leadcrm/audit/tracked.py.
# Fixtures loaded with loaddata are not changes anyone made.
AUDITLOG_DISABLE_ON_RAW_SAVE = True

# --- The admin (django-unfold) -------------------------------------------------------------------
UNFOLD = {
    "SITE_TITLE": "leadcrm",
    "SITE_HEADER": "leadcrm",
    "SITE_SUBHEADER": "Campaigns, leads and nurture",
    "SITE_SYMBOL": "campaign",
    # There is no public home page to "view"; landing pages keep their own "View on site".
    "SITE_URL": None,
    "SHOW_HISTORY": True,
    "SITE_FAVICONS": [{"rel": "icon", "type": "image/svg+xml", "href": lambda request: static("leadcrm/favicon.svg")}],
    "STYLES": [lambda request: static("leadcrm/admin.css")],
    "SCRIPTS": [lambda request: static("leadcrm/admin.js")],
    "SIDEBAR": {
        "show_search": False,
        "command_search": True,
        "show_all_applications": False,
        "navigation": "leadcrm.admin_site.sidebar_navigation",
    },
    "COMMAND": {"search_models": False, "search_callback": "leadcrm.admin_site.global_search"},
    "ACCOUNT": {"navigation": "leadcrm.admin_site.account_links"},
}

# --- Email -----------------------------------------------------------------------------------
# Development prints mail to the console; production must not write personal data to logs, so
# without EMAIL_URL it hands mail to the local MTA (failures are retried, never printed).
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
# Seconds before an SMTP connection or command gives up: a stalled mail server must not hold a worker.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="leadcrm <noreply@localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)

# --- HTTPS and cookies -----------------------------------------------------------------------
# On by default outside DEBUG; HTTPS_ONLY=false is the explicit opt-out for plain-HTTP deployments.
HTTPS_ONLY = env.bool("HTTPS_ONLY", default=not DEBUG)
SECURE_SSL_REDIRECT = HTTPS_ONLY
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes speak plain HTTP inside the network
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS_ONLY)
if env.bool("BEHIND_TLS_PROXY", default=False):
    # Only behind a proxy that sets X-Forwarded-Proto itself and strips it from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp) -------------------------------------------------------
# Every page loads scripts, styles, fonts and images from this site only; an inline <script> or
# <style> runs only with the page's nonce (templates write nonce="{{ CSP_NONCE }}"), and no page
# evaluates strings as code: the admin runs Alpine's CSP build (templates/unfold/layouts/skeleton.html).
# data: images are Unfold's and Swagger UI's icons inside their own style sheets.
CONTENT_SECURITY_POLICY_DIRECTIVES = {
    "default-src": [SELF],
    "script-src": [SELF, NONCE],
    "style-src": [SELF, NONCE],
    "img-src": [SELF, "data:"],
    "font-src": [SELF],
    "connect-src": [SELF],
    "object-src": [NONE],
    "base-uri": [NONE],
    "form-action": [SELF],
    "frame-ancestors": [NONE],
    "upgrade-insecure-requests": HTTPS_ONLY,
}
# Where browsers post violation reports (a URL of your collector); empty: none are sent. (Not a
# CSP_* setting: django-csp 4 takes those for its old settings and refuses to start.)
if csp_report_uri := env.str("CSP_REPORT_URI", default=""):
    CONTENT_SECURITY_POLICY_DIRECTIVES["report-uri"] = [csp_report_uri]
# CSP_REPORT_ONLY=true sends the policy as Content-Security-Policy-Report-Only: browsers report what
# it would block and block nothing. For trying a changed policy only; off, it is enforced.
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": CONTENT_SECURITY_POLICY_DIRECTIVES}
else:
    CONTENT_SECURITY_POLICY = {"DIRECTIVES": CONTENT_SECURITY_POLICY_DIRECTIVES}

# --- Visitor signals (click tracking and lead capture) ---------------------------------------
# Header with the visitor's IP as set by a trusted proxy (e.g. "X-Real-IP"); empty: REMOTE_ADDR.
CLIENT_IP_HEADER = env.str("CLIENT_IP_HEADER", default="")
# Header with the visitor's ISO country code as set by a CDN or proxy (e.g. "CF-IPCountry" behind
# Cloudflare). Empty by default: without such a proxy any visitor could send the header.
COUNTRY_HEADER = env.str("COUNTRY_HEADER", default="")

# --- Cache (API rate limits): local memory by default, Redis in production -----------------------
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis outage must not become a 500: fall back to this process's memory (leadcrm/cache.py),
    # and give up on a Redis that does not answer within half a second.
    CACHES["default"]["BACKEND"] = "leadcrm.cache.ResilientRedisCache"
    CACHES["default"].setdefault("OPTIONS", {}).update(socket_connect_timeout=0.5, socket_timeout=0.5)

# --- Landing pages ------------------------------------------------------------------------------
# The privacy policy every form links to (a page may name its own); the built-in page at /privacy/
# names PRIVACY_CONTACT_EMAIL for access and erasure requests.
PRIVACY_POLICY_URL = env.str("PRIVACY_POLICY_URL", default="/privacy/")
PRIVACY_CONTACT_EMAIL = env.str("PRIVACY_CONTACT_EMAIL", default="privacy@localhost")

# --- Partner API -----------------------------------------------------------------------------
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES + 1024
API_BATCH_MAX_LEADS = 1000
# How long a supplier's inbound ping price holds for the lead it posts with that ping id.
INBOUND_PING_SECONDS = env.int("INBOUND_PING_SECONDS", default=60)
# Hashes a buyer may add to or remove from its suppression list in one API call, in each of its two
# lists (emails, phones): about 70 bytes a hash, so both full fit in API_MAX_BODY_BYTES.
BUYER_SUPPRESSION_MAX_HASHES = 10000
# Advertiser postbacks (no API key): requests per minute from one address.
POSTBACK_REQUESTS_PER_MINUTE = env.int("POSTBACK_REQUESTS_PER_MINUTE", default=300)
IDEMPOTENCY_KEY_HOURS = 24
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "leads.api.authentication.ApiKeyAuthentication",
        "leadcrm.staff_login.authentication.DigestTokenAuthentication",  # DRF's tokens, stored as digests
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["leads.api.throttling.CallerRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "leadcrm.api_schema.ApiSchema",
    "EXCEPTION_HANDLER": "leadcrm.api_errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "leadcrm partner API",
    "DESCRIPTION": "Post leads, read them back, report outcomes and read reports. "
    "Authenticate with `Authorization: Api-Key <key>`. Errors share one shape: "
    '`{"error": {"code", "message", "fields"}}`, where `fields` maps each field (an item of a list by its '
    "path, `leads.3`) to its messages.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would send the schema's address to validator.swagger.io for its badge: nothing
    # leaves for another host (and the Content-Security-Policy would refuse the badge anyway).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "LeadStatusEnum": "leads.models.LeadStatus",
        "CampaignStatusEnum": "campaigns.models.Campaign.Status",
    },
}

# --- Lead pipeline and sales workflow ---------------------------------------------------------
LEAD_DEDUPE_WINDOW_DAYS = env.int("LEAD_DEDUPE_WINDOW_DAYS", default=30)
LEAD_MIN_FORM_SECONDS = env.float("LEAD_MIN_FORM_SECONDS", default=2.0)
LEAD_MAX_PER_IP_PER_HOUR = env.int("LEAD_MAX_PER_IP_PER_HOUR", default=5)
# Speed to lead: a qualified lead nobody contacted within this many working minutes is escalated.
SPEED_TO_LEAD_MINUTES = env.int("SPEED_TO_LEAD_MINUTES", default=15)
LEAD_ESCALATION_REASSIGN = env.bool("LEAD_ESCALATION_REASSIGN", default=False)
WORKING_HOURS = env.str("WORKING_HOURS", default="09:00-18:00")  # in TIME_ZONE
WORKING_DAYS = env.list("WORKING_DAYS", cast=int, default=[1, 2, 3, 4, 5])  # ISO weekdays, Monday = 1

# --- Retention ---------------------------------------------------------------------------------
# How long personal data is kept, in days; a daily beat job (leads.tasks.retention_task, or
# `manage.py run_retention`) erases what is past it. A lead's data is erased with the erasure
# service this many days after capture (an offer may set its own period); the lead stays counted.
LEAD_RETENTION_DAYS = env.int("LEAD_RETENTION_DAYS", default=730)
# Clicks lose the visitor's IP address and user agent after this many days (the click still counts).
CLICK_RETENTION_DAYS = env.int("CLICK_RETENTION_DAYS", default=90)
# Uploaded lead import files, audience export files and mail written by the file mail backend
# (EMAIL_URL=filemail://...) are deleted after these many days.
LEAD_IMPORT_FILE_RETENTION_DAYS = env.int("LEAD_IMPORT_FILE_RETENTION_DAYS", default=30)
AUDIENCE_EXPORT_RETENTION_DAYS = env.int("AUDIENCE_EXPORT_RETENTION_DAYS", default=30)
MAIL_FILE_RETENTION_DAYS = env.int("MAIL_FILE_RETENTION_DAYS", default=30)
# Records about staff name them and where they worked from. The personal data access log and the login
# records (each login and failed attempt, with its IP address and browser) are deleted after
# STAFF_LOG_RETENTION_DAYS; the change history (who changed what) after AUDIT_TRAIL_RETENTION_DAYS.
STAFF_LOG_RETENTION_DAYS = env.int("STAFF_LOG_RETENTION_DAYS", default=365)
AUDIT_TRAIL_RETENTION_DAYS = env.int("AUDIT_TRAIL_RETENTION_DAYS", default=730)
# Rows a retention batch changes in one transaction, so a long backlog never holds locks for long.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)

# --- Delivery to buyers and postbacks to traffic sources -------------------------------------
# Key that encrypts stored delivery credentials and webhook signing secrets (they must be read
# back to sign and authenticate). Defaults to one derived from SECRET_KEY; set it to rotate
# SECRET_KEY without losing them. Any string; it is hashed into a Fernet key.
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="") or f"derived:{SECRET_KEY}"
# Destinations may not resolve to private, loopback, link-local or metadata addresses. Hosts listed
# here (as written in the URL) skip that check: a buyer's server on the private network, or tests.
DELIVERY_ALLOWED_HOSTS = env.list("DELIVERY_ALLOWED_HOSTS", default=[])
DELIVERY_CONNECT_TIMEOUT = env.float("DELIVERY_CONNECT_TIMEOUT", default=5.0)
# A worker that dies mid-task frees its outbox entry after this long; the task's own hard time
# limit is shorter, so a live worker never outlasts its claim. Redis's visibility timeout is longer
# still, so a message of a killed worker comes back only after its claim ran out.
OUTBOX_CLAIM_SECONDS = env.int("OUTBOX_CLAIM_SECONDS", default=300)
OUTBOX_TASK_TIME_LIMIT = int(OUTBOX_CLAIM_SECONDS * 0.8)
# Calls to partners' servers (deliveries, postbacks, supplier notifications, webhook steps) wait on
# other people's servers: their own queue, so a hung buyer never holds up assignment and nurture
# work (docker-compose runs a worker per queue). Each app registers its follow-up kinds' queues.
PARTNER_CALLS_QUEUE = env.str("PARTNER_CALLS_QUEUE", default="deliveries")
# A worker claims up to this many due outbox rows at once and runs them as one batch. A batch's
# fixed costs (its statements and commits) are shared by its rows: a delivery in a batch of 200 costs
# the worker's batch thread about a sixth less than in one of 100, and its database round trips (each
# a few milliseconds while the call threads hold the GIL) are what a draining worker waits on most.
# Results are still written at least every 0.25 s.
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=200)
# A web process wakes a queue's workers at most once in this many seconds: the follow-ups committed
# meanwhile go as one task, sent when the window ends (a lone lead's at once). 0 sends every commit's.
# A publish costs a web process about 0.4 ms of CPU (Celery's message, then Redis), as much as a
# tenth of a lead's: at 70 leads a second a 0.05 s window still sent one task for every two leads.
# Under such load the workers are draining their queues anyway, so held ids wait at most this long.
OUTBOX_PUBLISH_WINDOW_SECONDS = env.float("OUTBOX_PUBLISH_WINDOW_SECONDS", default=0.25)
# Partner calls of a batch run in parallel over pooled keep-alive connections: at most this many
# at once in a worker process, and at most this many at once to one destination (host and port).
PARTNER_CALLS_CONCURRENCY = env.int("PARTNER_CALLS_CONCURRENCY", default=16)
PARTNER_CALLS_PER_DESTINATION = env.int("PARTNER_CALLS_PER_DESTINATION", default=4)
# Ping/post auctions a worker runs side by side, and the pings of one auction sent at once (an
# auction with more buyers pings the rest as threads free up).
AUCTIONS_AT_ONCE = env.int("AUCTIONS_AT_ONCE", default=8)
AUCTION_PINGS_AT_ONCE = env.int("AUCTION_PINGS_AT_ONCE", default=32)

# --- Nurture flows -----------------------------------------------------------------------------
# Leads are emailed in their own time zone (from their country; this one when unknown), never in
# quiet hours, and at most one flow email per this many hours across all flows.
NURTURE_DEFAULT_TIME_ZONE = env.str("NURTURE_DEFAULT_TIME_ZONE", default=TIME_ZONE)
NURTURE_QUIET_HOURS = env.str("NURTURE_QUIET_HOURS", default="21:00-08:00")
NURTURE_EMAIL_MIN_HOURS = env.int("NURTURE_EMAIL_MIN_HOURS", default=24)
NURTURE_TICK_BATCH = env.int("NURTURE_TICK_BATCH", default=500)
# Nurture emails one outbox task sends over one SMTP connection: larger than OUTBOX_BATCH_SIZE, since
# claiming, loading and recording cost per batch, and 500 emails take seconds, not minutes.
NURTURE_EMAIL_BATCH_SIZE = env.int("NURTURE_EMAIL_BATCH_SIZE", default=500)
# Domain of the Message-ID of nurture emails (bounces and replies refer to it).
NURTURE_MESSAGE_ID_DOMAIN = env.str("NURTURE_MESSAGE_ID_DOMAIN", default="leadcrm.local")

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = env.path("CELERY_BROKER_DIR", default=VAR_DIR / "celery-broker")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Server-less broker for a first run: messages are files in a local folder.
    Path(CELERY_BROKER_DIR).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR),
        "data_folder_out": str(CELERY_BROKER_DIR),
        "control_folder": str(Path(CELERY_BROKER_DIR) / "control"),  # not ./control in the checkout
        # The file broker is polled; the default second between polls made a worker take about
        # one message a second, so a backlog (the demo's first minutes) crawled.
        "polling_interval": 0.1,
    }
else:
    # Bounded socket waits so a stalled broker cannot hang a web request.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "visibility_timeout": max(env.int("CELERY_VISIBILITY_TIMEOUT", default=3600), OUTBOX_CLAIM_SECONDS + 60),
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 5
# A request must not hang on a dead broker: give up publishing quickly, the outbox sweeper re-sends.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Logging ---------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # axes logs every login at INFO; its warnings (failures, lockouts) are the ones worth keeping.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
