"""The real-corpus tests cannot be switched off silently: a missing UD file is a skip locally, a failure in CI."""

import pytest

from tests import assets


def test_missing_ud_file_skips_on_a_workstation_and_fails_in_ci(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "UD_DEV", tmp_path / "missing.conllu")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing.conllu is missing"):
        assets.ud_dev()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, so this is a failure"):
        assets.ud_dev()

    (tmp_path / "missing.conllu").write_text("1\ta\n")
    assert assets.ud_dev() == tmp_path / "missing.conllu"
