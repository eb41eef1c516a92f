"""The repository's root and the environment of someone who just cloned it, for tests that run its scripts."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def newcomer_env(**extra: str) -> dict[str, str]:
    """The environment of someone who just cloned the repository: none of the test suite's or CI's settings."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("NEUROX_", "DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))
        and name not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "PYTHON"}
    }
    return {**env, **extra}
