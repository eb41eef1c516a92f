"""A pool process imports the engine's heavy libraries when it starts, not inside its first step (the pipeline
benchmark measured ~4 s added to a fresh worker's first extraction and first lca step on 2 cores)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from celery.signals import worker_process_init

from analysis import tasks

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_preload_is_connected_to_pool_process_start():
    assert any(ref() is tasks.preload_engine_libraries for _, ref in worker_process_init.receivers)


def test_the_preload_imports_torch_and_transformers_in_a_fresh_process():
    code = ("import sys, django; django.setup()\n"
            "assert 'transformers' not in sys.modules\n"
            "from analysis import tasks\n"
            "tasks.preload_engine_libraries().join(120)\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]


def test_a_task_that_starts_during_the_preload_waits_for_it_before_using_transformers():
    code = ("import sys, django; django.setup()\n"
            "from analysis import tasks\n"
            "tasks.preload_engine_libraries()\n"
            "tasks._wait_for_preload()  # what every step and realtime task does first\n"
            "import transformers\n"
            "print(tasks._preloading.is_alive(), hasattr(transformers, 'AutoModelForMaskedLM'))\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]
