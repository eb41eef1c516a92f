"""The Celery app. Configuration lives in settings (CELERY_* names); see the README for worker commands.

Workers: ``celery -A neurox_site worker -Q gpu --concurrency 1 --max-tasks-per-child 20`` for model work and
``celery -A neurox_site worker -Q cpu`` for array work. Without REDIS_URL the broker is kombu's filesystem transport under
$NEUROX_DATA_DIR/broker/ (``scripts/serve`` starts a worker per queue on it).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "neurox_site.settings")

app = Celery("neurox_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
