"""The README's two commands, minus the parts that never end or that download: ``scripts/serve --no-serve``
(migrate and print a login, on a fresh data folder) and the shared environment bootstrap (``scripts/_bootstrap``)
that both commands use, on a throw-away copy of the scripts with empty requirements."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.newcomer import REPO_ROOT, newcomer_env

pytestmark = pytest.mark.slow

LOGIN = re.compile(r"username: (?P<username>\S+)\s+password: (?P<password>\S+)")


def run(command: list[str], env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_serve_prepares_a_fresh_data_folder_and_prints_a_login_that_works(tmp_path):
    data_dir = tmp_path / "var"
    # NEUROX_PYTHON: this environment as it is (the install step has its own test below).
    env = newcomer_env(NEUROX_DATA_DIR=str(data_dir), NEUROX_PYTHON=sys.executable)

    first = run([str(REPO_ROOT / "scripts" / "serve"), "--no-serve"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Created the development login" in first.stdout
    assert (data_dir / "db.sqlite3").is_file()
    first_login = LOGIN.search(first.stdout)
    assert first_login and first_login["username"] == "dev"

    # Safe to run again: the data stays, the login gets a fresh password.
    again = run([str(REPO_ROOT / "scripts" / "serve"), "--no-serve"], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Reset the password of the development login" in again.stdout
    login = LOGIN.search(again.stdout)
    assert login["password"] != first_login["password"]

    # The printed login signs in (with the embedded defaults' real settings and password hashing).
    check = run([sys.executable, "manage.py", "shell", "-c", (
        "from django.contrib.auth import authenticate\n"
        f"print('new', bool(authenticate(username='dev', password={login['password']!r})))\n"
        f"print('old', bool(authenticate(username='dev', password={first_login['password']!r})))\n"
    )], {**env, "DJANGO_SETTINGS_MODULE": "neurox_site.settings"})
    assert check.returncode == 0, check.stderr
    answers = dict(re.findall(r"^(new|old) (True|False)$", check.stdout, flags=re.MULTILINE))
    assert answers == {"new": "True", "old": "False"}, check.stdout


def test_serve_refuses_unknown_arguments():
    result = run([str(REPO_ROOT / "scripts" / "serve"), "--bogus"], newcomer_env())
    assert result.returncode == 2
    assert "usage: scripts/serve [--no-serve]" in result.stderr


@pytest.fixture
def scratch_clone(tmp_path):
    """The scripts in an empty folder with requirements that install nothing (no download, seconds not minutes)."""
    shutil.copytree(REPO_ROOT / "scripts", tmp_path / "scripts")
    (tmp_path / "requirements.txt").write_text("# nothing\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\n")
    return tmp_path


def bootstrap(clone: Path, **extra: str) -> subprocess.CompletedProcess:
    """Source the shared bootstrap as both scripts do and report which python it chose."""
    env = newcomer_env(PYTHON=sys.executable, **extra)
    return run(["bash", "-c", 'set -euo pipefail; source scripts/_bootstrap; neurox_python; echo "python=$NEUROX_PY"'],
               env, cwd=clone)


def test_bootstrap_creates_the_environment_once_and_reinstalls_when_requirements_change(scratch_clone):
    first = bootstrap(scratch_clone)
    assert first.returncode == 0, first.stderr
    assert "Creating .venv" in first.stdout and "Installing requirements-dev.txt" in first.stdout
    assert first.stdout.strip().endswith("python=.venv/bin/python")
    assert (scratch_clone / ".venv" / "bin" / "python").exists()
    stamp = scratch_clone / ".venv" / ".neurox-requirements.sha256"
    assert len(stamp.read_text().strip()) == 64

    unchanged = bootstrap(scratch_clone)
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout.strip() == "python=.venv/bin/python"  # no creating, no installing

    (scratch_clone / "requirements.txt").write_text("# nothing, but changed\n")
    changed = bootstrap(scratch_clone)
    assert changed.returncode == 0, changed.stderr
    assert "Creating .venv" not in changed.stdout and "Installing requirements-dev.txt" in changed.stdout
    installed = stamp.read_text()

    # A failed install leaves the stamp of the last good one, so the next run tries again.
    (scratch_clone / "requirements.txt").write_text("--no-such-pip-option\n")
    for _ in range(2):
        failed = bootstrap(scratch_clone)
        assert failed.returncode != 0
        assert "Installing requirements-dev.txt" in failed.stdout
        assert stamp.read_text() == installed


def test_bootstrap_uses_neurox_python_as_it_is(scratch_clone):
    result = bootstrap(scratch_clone, NEUROX_PYTHON=sys.executable)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"python={sys.executable}"
    assert not (scratch_clone / ".venv").exists()

    missing = bootstrap(scratch_clone, NEUROX_PYTHON=str(scratch_clone / "no-such-python"))
    assert missing.returncode == 2
    assert "is not an executable Python" in missing.stderr

