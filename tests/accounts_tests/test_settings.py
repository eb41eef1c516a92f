"""The settings module under different environments, each in a fresh interpreter (settings load once per process).

Also: `check --deploy` is clean under production settings, and the OpenAPI schema validates without warnings.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUR_VARIABLES = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "NEUROX_", "DJANGO_", "CELERY_")

PRODUCTION = {
    "NEUROX_ENV": "production",
    "SECRET_KEY": "a-production-secret-that-is-long-and-random-6f1c9e2b7d4a8f03e5b1c7d9a2e4f6b8",
    "ALLOWED_HOSTS": "neurox.example.edu",
}


def clean_env(tmp_path, **variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLES)}
    env["NEUROX_DATA_DIR"] = str(tmp_path / "data")
    env.update(variables)
    return env


def load_settings(tmp_path, names, **variables):
    """Import neurox_site.settings in a subprocess and return the requested names as JSON-able values."""
    code = (
        "import json, neurox_site.settings as s\n"
        f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=clean_env(tmp_path, **variables),
        capture_output=True, text=True, timeout=60,
    )
    return result


def test_embedded_defaults(tmp_path):
    result = load_settings(
        tmp_path, ["DEBUG", "DATABASES", "CHANNEL_LAYERS", "CELERY_TASK_ALWAYS_EAGER", "CELERY_BROKER_URL",
                   "CELERY_BROKER_TRANSPORT_OPTIONS", "STORAGES", "SECRET_KEY"]
    )
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["DEBUG"] is True
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["DATABASES"]["default"]["NAME"] == str(tmp_path / "data" / "db.sqlite3")
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    # Real workers even here: a server-less broker whose folders exist, never tasks inside a web request.
    assert s["CELERY_TASK_ALWAYS_EAGER"] is False
    assert s["CELERY_BROKER_URL"] == "filesystem://"
    options = s["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "data" / "broker" / "messages")
    assert (tmp_path / "data" / "broker" / "messages").is_dir() and (tmp_path / "data" / "broker" / "control").is_dir()
    assert s["STORAGES"]["default"]["OPTIONS"]["location"] == str(tmp_path / "data" / "media")
    # The generated secret is persisted, so a second start reuses it.
    assert (tmp_path / "data" / "dev-secret-key").read_text() == s["SECRET_KEY"]
    again = json.loads(load_settings(tmp_path, ["SECRET_KEY"]).stdout)
    assert again["SECRET_KEY"] == s["SECRET_KEY"]


def test_database_url_and_redis_url(tmp_path):
    result = load_settings(
        tmp_path,
        ["DEBUG", "DATABASES", "CHANNEL_LAYERS", "CACHES", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER",
         "CELERY_BROKER_TRANSPORT_OPTIONS", "CELERY_TASK_TIME_LIMIT"],
        DATABASE_URL="postgres://neurox:pw@db.example.edu:5433/neuroxdb",
        REDIS_URL="redis://cache.example.edu:6379/2",
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    db = s["DATABASES"]["default"]
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "neuroxdb", "neurox", "pw", "db.example.edu", 5433,
    )
    assert db["CONN_HEALTH_CHECKS"] is True
    assert s["DEBUG"] is False
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "neurox_site.channel_layer.ResilientRedisChannelLayer"
    assert s["CACHES"]["default"]["LOCATION"] == "redis://cache.example.edu:6379/2"
    assert s["CELERY_BROKER_URL"] == "redis://cache.example.edu:6379/2"
    assert s["CELERY_TASK_ALWAYS_EAGER"] is False
    assert s["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] > s["CELERY_TASK_TIME_LIMIT"]


@pytest.mark.parametrize(
    ("missing", "message"),
    [("SECRET_KEY", "SECRET_KEY must be set"), ("ALLOWED_HOSTS", "ALLOWED_HOSTS must be set")],
)
def test_production_requires_secret_key_and_allowed_hosts(tmp_path, missing, message):
    variables = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = load_settings(tmp_path, ["DEBUG"], **variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_real_services_without_debug_also_require_a_secret(tmp_path):
    result = load_settings(tmp_path, ["DEBUG"], DATABASE_URL="postgres://u@localhost/x")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_debug_cannot_be_forced_on_in_production(tmp_path):
    result = load_settings(tmp_path, ["DEBUG"], DEBUG="true", **PRODUCTION)
    assert result.returncode != 0 and "DEBUG=true is not allowed" in result.stderr


def test_s3_storage_when_bucket_is_set(tmp_path):
    result = load_settings(
        tmp_path, ["STORAGES"], NEUROX_S3_BUCKET="neurox-data", NEUROX_S3_ENDPOINT_URL="https://s3.example.edu"
    )
    assert result.returncode == 0, result.stderr
    default = json.loads(result.stdout)["STORAGES"]["default"]
    assert default["BACKEND"] == "storages.backends.s3.S3Storage"
    assert default["OPTIONS"]["bucket_name"] == "neurox-data"
    assert default["OPTIONS"]["endpoint_url"] == "https://s3.example.edu"


def run_manage(tmp_path, *args, **variables):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=clean_env(tmp_path, **variables),
        capture_output=True, text=True, timeout=180,
    )


@pytest.mark.slow
def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_openapi_schema_validates_without_warnings(tmp_path):
    schema = tmp_path / "schema.yaml"
    result = run_manage(tmp_path, "spectacular", "--validate", "--fail-on-warn", "--file", str(schema))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/api/v1/tokens/" in schema.read_text()


def test_the_channel_layer_reads_longer_than_it_blocks():
    """redis-py 8 gives connections a 5 s socket timeout, the same as channels-redis' blocking read: every idle
    websocket was cut after ~5 s (channels_redis #422). The layer sets a longer one unless the hosts name one."""
    from neurox_site.channel_layer import ResilientRedisChannelLayer

    layer = ResilientRedisChannelLayer(hosts=["redis://127.0.0.1:6379/0"])
    assert layer.hosts[0]["socket_timeout"] > layer.brpop_timeout
    assert layer.hosts[0]["address"] == "redis://127.0.0.1:6379/0"
    chosen = ResilientRedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 60}])
    assert chosen.hosts[0]["socket_timeout"] == 60
