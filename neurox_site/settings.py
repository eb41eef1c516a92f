"""NeuroX settings: one module, driven by environment variables (django-environ).

Three situations, chosen by what the environment provides:

* **Embedded defaults** (nothing set): SQLite and files under ``NEUROX_DATA_DIR`` (default ``./var/``), an
  in-memory channel layer, a local-memory cache, real Celery workers (``scripts/serve`` starts them) on kombu's
  filesystem broker, which needs no server,
  ``DEBUG`` on, and a generated secret key persisted in the data folder so sessions survive restarts.
* **Real services**: ``DATABASE_URL`` switches to PostgreSQL (psycopg 3, connection health checks);
  ``REDIS_URL`` makes Redis the Celery broker, the Channels layer and the cache. ``DEBUG`` is off unless asked for.
* **Production** (``DEBUG`` off, e.g. ``NEUROX_ENV=production``): ``SECRET_KEY`` and ``ALLOWED_HOSTS`` must come from
  the environment (a clear error otherwise); secure cookies, HSTS and the HTTPS redirect are on, so that
  ``python manage.py check --deploy`` passes with no warnings.

Every variable is listed in the README's table.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

NEUROX_ENV = env.str("NEUROX_ENV", default="development").strip().lower()
if NEUROX_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"NEUROX_ENV must be 'development' or 'production', not {NEUROX_ENV!r}.")

DATA_DIR = Path(env.str("NEUROX_DATA_DIR", default=str(BASE_DIR / "var"))).expanduser().resolve()

DATABASE_URL = env.str("DATABASE_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="")

# The embedded mode is the only one where DEBUG defaults to on.
EMBEDDED = NEUROX_ENV == "development" and not DATABASE_URL and not REDIS_URL
DEBUG = env.bool("DEBUG", default=EMBEDDED)
if NEUROX_ENV == "production" and DEBUG:
    raise ImproperlyConfigured("DEBUG=true is not allowed with NEUROX_ENV=production.")


def _dev_secret_key(data_dir: Path) -> str:
    """A random secret generated once and kept in the data folder, so dev sessions survive restarts."""
    key_file = data_dir / "dev-secret-key"
    if key_file.exists():
        return key_file.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="") or _dev_secret_key(DATA_DIR)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (production). Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS must be set when DEBUG is off (production): a comma-separated list of the host names "
            "this site answers to, e.g. ALLOWED_HOSTS=neurox.example.edu"
        )

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Applications -------------------------------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "health_check",
    "axes",
    "accounts",
    "projects",
    "analysis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every HTML view needs a login unless marked @login_not_required. DRF views are exempt from this
    # middleware (they are csrf_exempt class views with their own auth), hence IsAuthenticated below.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After CommonMiddleware: styled error pages (JSON under /api/) even with DEBUG on; see neurox_site/errors.py.
    "neurox_site.errors.ErrorPagesMiddleware",
    # Turns a sign-in refused for too many failures into the lock-out page (last, as django-axes asks).
    "axes.middleware.AxesMiddleware",
]
# With DEBUG on, Django's technical error pages (routes, tracebacks) only when a developer asks for them.
NEUROX_DEBUG_PAGES = env.bool("NEUROX_DEBUG_PAGES", default=False)
CSRF_FAILURE_VIEW = "neurox_site.errors.csrf_failure"

ROOT_URLCONF = "neurox_site.urls"
WSGI_APPLICATION = "neurox_site.wsgi.application"
ASGI_APPLICATION = "neurox_site.asgi.application"

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
                "neurox_site.context_processors.sidebar_projects",
                "neurox_site.context_processors.site_flags",
                "neurox_site.context_processors.upload_rules",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------------------------

if DATABASE_URL:
    _database = env.db_url_config(DATABASE_URL)
    if _database["ENGINE"] in {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}:
        _database["ENGINE"] = "django.db.backends.postgresql"  # psycopg 3 is what is installed
    _database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    _database["CONN_HEALTH_CHECKS"] = True
    DATABASES = {"default": _database}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            # Lets the eager "worker" and the web process share the file without "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, channels, Celery --------------------------------------------------------------------------------------

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "neurox",
        }
    }
    # Our subclass of channels-redis' layer: a socket timeout above its blocking read, and a receive that
    # waits out a Redis outage (neurox_site/channel_layer.py says why).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "neurox_site.channel_layer.ResilientRedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "neurox:channels"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery reads every CELERY_* name below (namespace "CELERY" in neurox_site/celery.py).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=6 * 3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=CELERY_TASK_SOFT_TIME_LIMIT + 600)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("CELERY_TASK_TIME_LIMIT (hard) must be greater than CELERY_TASK_SOFT_TIME_LIMIT.")
# Tasks always go to real worker processes; running them in the calling process is for unit tests only
# (tests/settings.py), so a web request never runs a minute of computation.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
# Clients read the Run row, never Celery's result backend; only the realtime tasks (ignore_result=False) store
# their answer, which the waiting HTTP request reads: in Redis, or embedded in files beside the broker's.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 300
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 120  # a new pool process imports torch and transformers before it is ready
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis restart must not end the workers: they reconnect for as long as it takes (Celery's default gives up
# after 100 tries, about 45 minutes), and a step running meanwhile goes on: its heartbeat and log go to the
# database, and the reaper re-sends the steps whose queued messages the restart lost.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # Redis re-delivers an unacknowledged task after visibility_timeout: it must exceed the hard limit or long
    # tasks run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 3600}
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    # Embedded: the workers that scripts/serve starts share a broker that needs no server, kombu's filesystem
    # transport (messages are files under $NEUROX_DATA_DIR/broker/). Chosen over SQLAlchemy on SQLite because
    # revoke and remote control (ping, inspect) work on it too. It never redelivers a message whose worker was
    # killed: the reaper (beat) requeues such steps, as it does on Redis.
    BROKER_DIR = DATA_DIR / "broker"
    for folder in ("messages", "control", "results"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "neurox_site.broker:Transport"  # message files that appear whole (broker.py)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "messages"),
        "data_folder_out": str(BROKER_DIR / "messages"),
        "control_folder": str(BROKER_DIR / "control"),
        "polling_interval": 0.05,
    }
    CELERY_RESULT_BACKEND = f"file://{BROKER_DIR / 'results'}"
CELERY_TASK_DEFAULT_QUEUE = "cpu"
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_QUEUES = (Queue("gpu"), Queue("cpu"), Queue("realtime"))
# Each task names its queue (`@shared_task(queue=...)` in analysis/tasks.py): model work (forward passes) on
# `gpu`, array work on `cpu`, interactive requests a person waits for on `realtime`. No routing by name patterns.
CELERY_TASK_ROUTES = {}
# The reaper requeues steps whose worker died (stale heartbeat) and re-sends steps whose message was lost.
CELERY_BEAT_SCHEDULE = {
    "reap-stale-steps": {"task": "analysis.tasks.reap", "schedule": env.float("NEUROX_REAP_EVERY_SECONDS",
                                                                              default=30.0)},
}
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True

# --- The pipeline (analysis runs) ---------------------------------------------------------------------------------

# Results (activation stores, rankings, statistics), keyed by content; a local folder every worker shares, or
# with NEUROX_RESULTS_IN_S3 (below) this node's cache of the results in the bucket.
NEUROX_RESULTS_DIR = Path(env.str("NEUROX_RESULTS_DIR", default=str(DATA_DIR / "results"))).expanduser().resolve()
# A running step whose heartbeat is older than this is taken for dead (its worker was killed).
NEUROX_STEP_STALE_SECONDS = env.int("NEUROX_STEP_STALE_SECONDS", default=300)
# Workers heartbeat this often while a step runs (a thread, so a long model load is not taken for death).
NEUROX_STEP_HEARTBEAT_SECONDS = env.float("NEUROX_STEP_HEARTBEAT_SECONDS", default=30.0)
# Attempts a step gets before the reaper fails it.
NEUROX_STEP_MAX_ATTEMPTS = env.int("NEUROX_STEP_MAX_ATTEMPTS", default=3)
# A step queued for longer than this with no worker taking it is sent again (its message may have been lost).
NEUROX_STEP_RESEND_SECONDS = env.int("NEUROX_STEP_RESEND_SECONDS", default=900)
# The reaper removes log lines older than this many days of finished runs (0: keep every line).
NEUROX_LOG_RETENTION_DAYS = env.int("NEUROX_LOG_RETENTION_DAYS", default=90)
# The operator's page (admin → Operations) waits this long for workers to answer Celery's ping.
NEUROX_ADMIN_PING_TIMEOUT = env.float("NEUROX_ADMIN_PING_TIMEOUT", default=1.0)
# The example projects (manage.py load_examples): the UD English-EWT dev file the MiniLM example reads (beside the
# checkout in development; the example is skipped, saying why, where the file is not).
NEUROX_EXAMPLES_UD_CONLLU = Path(env.str(
    "NEUROX_EXAMPLES_UD_CONLLU", default=str(BASE_DIR.parent / "shared" / "data" / "ud-ewt" / "en_ewt-ud-dev.conllu")))
# Modules that register a site's own step kinds (analysis/steps/registry.py), imported by web and workers alike.
NEUROX_STEP_MODULES = env.list("NEUROX_STEP_MODULES", default=[])
# Words per extraction chunk: the unit of resumption, heartbeat and cancellation.
NEUROX_EXTRACT_CHUNK_WORDS = env.int("NEUROX_EXTRACT_CHUNK_WORDS", default=4096)
NEUROX_EXTRACT_BATCH_TOKENS = env.int("NEUROX_EXTRACT_BATCH_TOKENS", default=4096)  # padded tokens per forward pass
# The new-analysis form's time estimate: extraction words per second per device, for all-MiniLM-L6-v2 with every
# hidden + MLP layer (analysis/estimates.py scales by parameter count). CPU default: benchmarks/bench_extract.py
# on the 2-core development machine (973 words/s, loaded by other work); a GPU rate appears once it is measured
# and set with NEUROX_ESTIMATE_CUDA_WORDS_PER_SECOND.
NEUROX_ESTIMATE_WORDS_PER_SECOND = {device: rate for device, rate in {
    "cpu": env.float("NEUROX_ESTIMATE_CPU_WORDS_PER_SECOND", default=970.0),
    "cuda": env.float("NEUROX_ESTIMATE_CUDA_WORDS_PER_SECOND", default=0.0)}.items() if rate > 0}
# The cost model (analysis/runs/estimates.py): compute-seconds per unit of work of each step kind, behind the per-run
# limit and the compute quota. Measured 2026-12-07 on the 2-core development machine (shared with other work) by
# benchmarks/bench_cost_rates.py: all-MiniLM-L6-v2 × the first 500 sentences of UD EWT dev (7,621 words × 2,688
# hidden neurons), one fit per method; a "cell" is a word × a neuron read. lca / lca_dense: from the 1,200-sentence
# check instead (their time grows faster than the cells: 69.7 s there, 4.6× the 500-sentence rate's estimate), so
# the limit errs on the high side. probeless' resample share: 1 (its measured 0 was noise under a second).
# NEUROX_COST_RATES (JSON) overrides any of them.
NEUROX_COST_RATES = {
    "statistics_cells_per_second": 3.4e7,
    "ranking_cells_per_second": {"lca": 6.3e5, "lca_dense": 7.0e5, "anova": 9.2e7, "mutual_info": 1.35e7,
                                 "probeless": 2.9e7, "probeless_raw": 1.35e8, "mean_difference": 1.17e8,
                                 "mean_difference_raw": 1.38e8, "variance": 1.35e8},
    "resample_share": {"lca": 0.33, "lca_dense": 0.33, "anova": 1.88, "mutual_info": 0.96, "probeless": 1.0,
                       "probeless_raw": 1.0, "mean_difference": 1.36, "mean_difference_raw": 1.36, "variance": 0.99},
    "probe_evaluation_share": 0.2,  # a zero_out point's scoring, as a share of one lca fit
    "crossmodel_cells_per_second": {"maxcorr": 9.7e10, "mincorr": 9.7e10, "linreg": 3.3e10, "svcca": 1.6e10},
    "step_seconds": 1.0,  # claim, opening the store, writing the result: assumed, not measured
}
NEUROX_COST_RATES.update(env.json("NEUROX_COST_RATES", default={}))

# --- The realtime path (typed sentences, manipulation): answered by `realtime` workers while the request waits
# Models a realtime worker keeps loaded, least recently used evicted first, bounded by their parameter bytes.
NEUROX_REALTIME_CACHE_BYTES = env.int("NEUROX_REALTIME_CACHE_BYTES", default=2 * 1024**3)
# Seconds an HTTP request waits for a realtime worker's answer (then 504).
NEUROX_REALTIME_TIMEOUT = env.float("NEUROX_REALTIME_TIMEOUT", default=10.0)
# How long "a realtime worker is listening" is believed before asking the workers again.
NEUROX_REALTIME_WORKER_CHECK_SECONDS = env.float("NEUROX_REALTIME_WORKER_CHECK_SECONDS", default=30.0)
NEUROX_REALTIME_MAX_WORDS = env.int("NEUROX_REALTIME_MAX_WORDS", default=128)
# torch threads per worker process; unset: 1 on realtime workers (so an extraction on the same cores does not
# slow them down), cores minus one on gpu/cpu workers.
NEUROX_TORCH_THREADS = env.int("NEUROX_TORCH_THREADS", default=0)

# --- Storage ------------------------------------------------------------------------------------------------------

MEDIA_ROOT = Path(env.str("NEUROX_MEDIA_ROOT", default=str(DATA_DIR / "media"))).resolve()
MEDIA_URL = "/media/"  # never served publicly: files are reached through permission-checked views
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("NEUROX_STATIC_ROOT", default=str(DATA_DIR / "static"))).resolve()
STATICFILES_DIRS = [BASE_DIR / "static"]
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root; collectstatic fills it

NEUROX_S3_BUCKET = env.str("NEUROX_S3_BUCKET", default="")
# Results in the bucket too (under <prefix>/results/), each node's NEUROX_RESULTS_DIR then a cache of them
# (analysis/steps/object_store.py): workers on several machines need no shared folder.
NEUROX_RESULTS_IN_S3 = env.bool("NEUROX_RESULTS_IN_S3", default=False)
# With NEUROX_RESULTS_IN_S3: bytes of fetched results a node keeps, least recently used removed first (0: no bound).
NEUROX_RESULTS_CACHE_BYTES = env.int("NEUROX_RESULTS_CACHE_BYTES", default=0)
if NEUROX_RESULTS_IN_S3 and not NEUROX_S3_BUCKET:
    raise ImproperlyConfigured("NEUROX_RESULTS_IN_S3 needs NEUROX_S3_BUCKET (and its endpoint and credentials).")


def s3_storage(prefix: str, *, file_overwrite: bool, bucket_name: str, endpoint_url=None, region_name=None,
               access_key=None, secret_key=None, root_prefix: str = "") -> dict:
    """A ``STORAGES`` entry: django-storages' S3Storage on ``bucket_name`` under ``root_prefix``/``prefix``."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket_name,
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "access_key": access_key,
            "secret_key": secret_key,
            "location": "/".join(part.strip("/") for part in (root_prefix, prefix) if part.strip("/")),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": file_overwrite,
            # a file read through the storage (an upload's local copy) spools to disk past this, not all in memory
            "max_memory_size": 16 * 1024**2,
        },
    }


_S3_CONNECTION = {
    "bucket_name": NEUROX_S3_BUCKET,
    "endpoint_url": env.str("NEUROX_S3_ENDPOINT_URL", default="") or None,
    "region_name": env.str("NEUROX_S3_REGION", default="") or None,
    "access_key": env.str("NEUROX_S3_ACCESS_KEY_ID", default="") or None,  # else the usual AWS variables / role
    "secret_key": env.str("NEUROX_S3_SECRET_ACCESS_KEY", default="") or None,
    "root_prefix": env.str("NEUROX_S3_PREFIX", default=""),
}

if NEUROX_S3_BUCKET:
    _default_storage = s3_storage("", file_overwrite=False, **_S3_CONNECTION)  # uploads: keys uploads/<user>/…
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
if NEUROX_RESULTS_IN_S3:  # results are keyed by content: writing one again writes the same bytes
    STORAGES["results"] = s3_storage("results", file_overwrite=True, **_S3_CONNECTION)

# Uploads: anything above this many bytes goes to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
FILE_UPLOAD_TEMP_DIR = env.str("NEUROX_UPLOAD_TEMP_DIR", default="") or None
FILE_UPLOAD_PERMISSIONS = 0o640
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # non-file form fields only (Django's default)

NEUROX_MAX_UPLOAD_BYTES = env.int("NEUROX_MAX_UPLOAD_BYTES", default=4 * 1024**3)
NEUROX_MAX_ARCHIVE_FILES = env.int("NEUROX_MAX_ARCHIVE_FILES", default=200)
NEUROX_MAX_UNPACKED_BYTES = env.int("NEUROX_MAX_UNPACKED_BYTES", default=8 * 1024**3)
NEUROX_MAX_SENTENCE_WORDS = env.int("NEUROX_MAX_SENTENCE_WORDS", default=512)
NEUROX_DEFAULT_STORAGE_QUOTA_BYTES = env.int("NEUROX_DEFAULT_STORAGE_QUOTA_BYTES", default=20 * 1024**3)
NEUROX_DEFAULT_MAX_CONCURRENT_RUNS = env.int("NEUROX_DEFAULT_MAX_CONCURRENT_RUNS", default=2)
NEUROX_ALLOW_SIGNUP = env.bool("NEUROX_ALLOW_SIGNUP", default=True)
# Compute: the largest estimated cost of one run, and the compute-seconds a user may use per period.
NEUROX_DEFAULT_MAX_RUN_COMPUTE_SECONDS = env.int("NEUROX_DEFAULT_MAX_RUN_COMPUTE_SECONDS", default=4 * 3600)
NEUROX_DEFAULT_COMPUTE_QUOTA_SECONDS = env.int("NEUROX_DEFAULT_COMPUTE_QUOTA_SECONDS", default=40 * 3600)
# Workers take queued steps in turns by person, the example projects last (analysis/runs/fair_share.py); false:
# first come, first served.
NEUROX_FAIR_SHARE = env.bool("NEUROX_FAIR_SHARE", default=True)
NEUROX_COMPUTE_PERIOD_DAYS = env.int("NEUROX_COMPUTE_PERIOD_DAYS", default=30)

# --- Accounts -----------------------------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The sign-in limit (django-axes) checks before the password does; see "Sign-in and API limits" below. The
# university sign-in backend answers only the OpenID Connect callback, and only while it is configured.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.SignInLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
    "accounts.oidc.UniversitySignInBackend",
]

# University sign-in (OpenID Connect, mozilla-django-oidc; accounts/oidc.py). Off unless both the issuer and the
# client id are set. Endpoints come from <issuer>/.well-known/openid-configuration at the first sign-in, unless
# given explicitly. Accounts are found by (issuer, sub); see the README's "University sign-in".
NEUROX_OIDC_ISSUER = env.str("NEUROX_OIDC_ISSUER", default="").strip()
OIDC_RP_CLIENT_ID = env.str("NEUROX_OIDC_CLIENT_ID", default="").strip()
OIDC_RP_CLIENT_SECRET = env.str("NEUROX_OIDC_CLIENT_SECRET", default="")
NEUROX_OIDC_ENABLED = bool(NEUROX_OIDC_ISSUER and OIDC_RP_CLIENT_ID)
if bool(NEUROX_OIDC_ISSUER) != bool(OIDC_RP_CLIENT_ID):
    raise ImproperlyConfigured(
        "University sign-in needs both NEUROX_OIDC_ISSUER and NEUROX_OIDC_CLIENT_ID (or neither, to turn it off)."
    )
# The button says "Sign in with <this>".
NEUROX_OIDC_NAME = env.str("NEUROX_OIDC_NAME", default="your university")
OIDC_RP_SCOPES = " ".join(env.list("NEUROX_OIDC_SCOPES", default=["openid", "email", "profile"]))
if NEUROX_OIDC_ENABLED and "openid" not in OIDC_RP_SCOPES.split():
    raise ImproperlyConfigured(f"NEUROX_OIDC_SCOPES must include openid, not only {OIDC_RP_SCOPES!r}.")
OIDC_RP_SIGN_ALGO = env.str("NEUROX_OIDC_SIGN_ALGO", default="RS256")
NEUROX_OIDC_ENDPOINTS = {
    "authorization_endpoint": env.str("NEUROX_OIDC_AUTHORIZATION_ENDPOINT", default=""),
    "token_endpoint": env.str("NEUROX_OIDC_TOKEN_ENDPOINT", default=""),
    "userinfo_endpoint": env.str("NEUROX_OIDC_USERINFO_ENDPOINT", default=""),
    "jwks_uri": env.str("NEUROX_OIDC_JWKS_URI", default=""),
}
# First sign-in creates the account (also with NEUROX_ALLOW_SIGNUP=false); false: only accounts an operator linked.
NEUROX_OIDC_CREATE_ACCOUNTS = env.bool("NEUROX_OIDC_CREATE_ACCOUNTS", default=True)
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_TOKEN_USE_BASIC_AUTH = env.bool("NEUROX_OIDC_TOKEN_BASIC_AUTH", default=True)  # client_secret_basic
OIDC_TIMEOUT = env.float("NEUROX_OIDC_TIMEOUT", default=10.0)
OIDC_VERIFY_SSL = env.bool("NEUROX_OIDC_VERIFY_TLS", default=True)
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc-callback"

# last_used_at is written at most this often per token, so API calls do not each cost a write.
NEUROX_TOKEN_LAST_USED_RESOLUTION = timedelta(seconds=60)

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="neurox@localhost")

# --- REST API -----------------------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("NEUROX_API_USER_RATE", default="2000/hour"),
        "anon": env.str("NEUROX_API_ANON_RATE", default="60/hour"),
        # Requests answered 401 (bad, expired or missing credentials), per client address.
        "failed_auth": env.str("NEUROX_API_FAILED_AUTH_RATE", default="20/minute"),
    },
    # Proxies in front of the server whose X-Forwarded-For is trusted for the client address. 0: REMOTE_ADDR
    # only (DRF's default of None would let any client choose its address and so escape the per-address limits).
    "NUM_PROXIES": env.int("NEUROX_NUM_PROXIES", default=0),
    "EXCEPTION_HANDLER": "neurox_site.api_errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "neurox_site.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    # Names for choice sets that share a field name (a run's and a step's "state", an upload's and a step's "kind").
    "ENUM_NAME_OVERRIDES": {
        "RunStateEnum": "analysis.models.RunState",
        "StepStateEnum": "analysis.models.StepState",
        "StepKindEnum": "analysis.models.StepKind",
        "UploadKindEnum": "projects.models.UploadKind",
    },
    "TITLE": "NeuroX API",
    "DESCRIPTION": "Find and analyse important neurons in neural NLP models. Authenticate with "
    "`Authorization: Token <secret>` (create tokens on the API tokens page).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI assets from drf-spectacular-sidecar: the docs page works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One documented error shape and the error statuses every operation can answer.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "neurox_site.api_schema.document_errors",
    ],
}

# --- Sign-in limits (django-axes) --------------------------------------------------------------------------------
# After NEUROX_SIGNIN_FAILURE_LIMIT failed sign-ins for one account (from anywhere), or from one client address
# (for any accounts), that account or address cannot sign in, not even with the right password, until
# NEUROX_SIGNIN_LOCKOUT_MINUTES have passed without a further attempt. Applies to the sign-in page and the admin's.
# Failures are kept in the database (admin: Axes → Access attempts; delete one, or `manage.py axes_reset`, to
# unlock early), so every server process shares them.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("NEUROX_SIGNIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("NEUROX_SIGNIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.views.signin_locked_out"

# --- Security -----------------------------------------------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("NEUROX_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_SSL_REDIRECT = env.bool("NEUROX_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("NEUROX_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("NEUROX_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("NEUROX_HSTS_PRELOAD", default=True)
    # Behind a TLS-terminating proxy (nginx, a load balancer) that sets X-Forwarded-Proto.
    if env.bool("NEUROX_BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # The health endpoint is probed over plain HTTP by load balancers.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]

# --- Misc ---------------------------------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
