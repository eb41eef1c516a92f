"""Settings for the test suite: the real settings module, driven by the same environment variables
(so CI runs on PostgreSQL and Redis with DATABASE_URL / REDIS_URL), plus what tests need on top.

pytest-django runs tests with DEBUG off, which the real settings treat as production; this overlay supplies a
test-only secret and host list when the environment has none, and turns off the HTTPS redirect and secure
cookies (the test client speaks plain HTTP). Files go to a throw-away folder, never ./var/.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "k3y" * 12)
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("NEUROX_DATA_DIR", tempfile.mkdtemp(prefix="neurox-tests-"))

from neurox_site.settings import *  # noqa: E402,F403
from neurox_site.settings import DATA_DIR, DATABASES, REDIS_URL, STATIC_ROOT, STORAGES  # noqa: E402

STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# The browser tests' server runs in another process: an in-memory SQLite test database would be invisible
# to it, so on SQLite the test database is a file in the throw-away data folder.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(DATA_DIR / "test-db.sqlite3")

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0

# Fast hashing: tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# No manifest (that needs collectstatic); templates still resolve {% static %}.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}

# Tests run tasks in-process unless a test starts a real worker (it then overrides this).
CELERY_TASK_ALWAYS_EAGER = True

# Throttles would make the suite order-dependent; throttling has its own test with override_settings.
REST_FRAMEWORK = {**REST_FRAMEWORK}  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "user": "100000/hour", "anon": "100000/hour", "failed_auth": "100000/hour",
}

if REDIS_URL:
    # Each test process gets its own key space so parallel runs do not see each other's cache.
    CACHES["default"]["KEY_PREFIX"] = f"neurox-test-{os.getpid()}"  # noqa: F405
