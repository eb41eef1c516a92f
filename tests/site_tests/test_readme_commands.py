"""The README's commands do what its text says (issue #6, item 14): run them as written, through bash."""

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rest_framework.test import APIClient

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()


def readme_line(pattern: str) -> str:
    lines = [line for line in README.splitlines() if re.match(pattern, line)]
    assert len(lines) == 1, f"the README has {len(lines)} lines matching {pattern!r}"
    return lines[0]


def bash(script: str, **env: str) -> str:
    result = subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_model_command_finds_the_bundled_minilm_with_neurox_python_set():
    model_line = readme_line(r"MODEL=")
    folder = Path(bash(f'{model_line}\necho "$MODEL"', NEUROX_PYTHON=sys.executable).strip())
    assert folder.is_absolute() and folder.name == "model"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


@pytest.mark.django_db
def test_the_token_example_makes_a_token_valid_for_30_days(user):
    assert "valid for 30 days" in README
    expires_line = readme_line(r"EXPIRES=")
    body_line = readme_line(r'\s+-d ".*expires_at')
    body = re.search(r'-d (".*?[^\\]")', body_line).group(1)
    payload = bash(f"{expires_line}\necho {body}")
    api = APIClient()
    api.force_authenticate(user)
    response = api.post("/api/v1/tokens/", data=payload, content_type="application/json")
    assert response.status_code == 201, response.content
    expires = datetime.fromisoformat(response.json()["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(days=30))) < timedelta(minutes=5)
