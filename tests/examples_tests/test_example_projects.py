"""The example projects on their small versions (tiny models trained on the spot, a few dozen sentences): made by
``manage.py load_examples``, computed through the pipeline (tasks in-process here; the real workers run them under
``scripts/serve``), visible read-only to every signed-in user, and reused whole on a second start."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from analysis.runs.example_projects import EXAMPLES_USERNAME, load_examples
from analysis.models import Run, RunState, StepKind
from projects.models import ModelUpload, Project
from projects.selectors import projects_visible_to, role_of
from tests.assets import UD_DEV
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def example_folders(folders, settings, tmp_path):
    """The pipeline tests' upload and results folders, plus a data folder for the examples' files."""
    settings.DATA_DIR = tmp_path / "data"
    settings.NEUROX_EXAMPLES_UD_CONLLU = UD_DEV
    return tmp_path


def _states(run: Run) -> dict:
    return {step.title: step.state for step in run.steps.all()}


def test_the_small_examples_compute_through_the_pipeline_and_a_second_start_reuses_everything(
        example_folders, django_capture_on_commit_callbacks):
    if not UD_DEV.is_file():
        pytest.skip(f"no UD file at {UD_DEV}")
    with django_capture_on_commit_callbacks(execute=True):
        loaded = load_examples(small=True, log=lambda _: None)
    assert [entry.example.slug for entry in loaded] == ["minilm-ud", "encoders", "causal-lms", "translation"]
    assert all(entry.action == "run created" for entry in loaded)
    for entry in loaded:
        entry.run.refresh_from_db()
        assert entry.run.state == RunState.SUCCEEDED, (entry.example.slug, entry.run.error, _states(entry.run))
        assert entry.project.is_example and entry.project.owner.username == EXAMPLES_USERNAME
    kinds = {entry.example.slug: set(entry.run.steps.values_list("kind", flat=True)) for entry in loaded}
    assert {StepKind.EXTRACT, StepKind.RANKING, StepKind.STATISTICS, StepKind.PROBE_ABLATION} <= kinds["minilm-ud"]
    for slug in ("causal-lms", "translation"):
        assert {StepKind.CROSSMODEL, StepKind.MODEL_ABLATION} <= kinds[slug]
    by_slug = {entry.example.slug: entry for entry in loaded}
    assert by_slug["causal-lms"].run.request["crossmodel"] == [{"method": m} for m in ("maxcorr", "mincorr",
                                                                                         "linreg", "svcca")]
    translation = by_slug["translation"]
    assert translation.project.corpus_uploads.get().label_column == "feats:Tense"
    assert (translation.run.request["neuron_sets"], translation.run.request["layers"]) == (["enc.hidden"], [2])
    # the two pretrained encoders: MiniLM is the first example's upload (one copy), MPNet unpacked from its parts
    encoders = by_slug["encoders"].project
    assert sorted(encoders.model_uploads.values_list("name", flat=True)) == ["all-MiniLM-L6-v2", "all-mpnet-base-v2"]
    assert encoders.model_uploads.get(name="all-MiniLM-L6-v2") == by_slug["minilm-ud"].project.model_uploads.get()
    assert encoders.model_uploads.get(name="all-mpnet-base-v2").n_layers == 12
    assert kinds["encoders"] == {StepKind.EXTRACT, StepKind.STATISTICS, StepKind.RANKING, StepKind.CROSSMODEL}

    runs, uploads = Run.objects.count(), ModelUpload.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        again = load_examples(small=True, log=lambda _: None)
    assert [entry.action for entry in again] == ["run reused (succeeded)"] * 4
    assert Run.objects.count() == runs and ModelUpload.objects.count() == uploads
    assert Project.objects.filter(is_example=True).count() == 4


def test_every_signed_in_user_sees_an_example_project_as_a_viewer_and_cannot_change_it(example_folders):
    load_examples(["causal-lms"], small=True, runs=False, log=lambda _: None)
    project = Project.objects.get(is_example=True)
    someone = UserFactory(username="newcomer")
    assert list(projects_visible_to(someone)) == [project]
    assert role_of(someone, project) == "viewer"
    assert not projects_visible_to(None).exists()

    client = Client()
    client.force_login(someone)
    listing = client.get("/projects/")
    assert project.name in listing.content.decode() and "example" in listing.content.decode()
    page = client.get(f"/projects/{project.pk}/")
    assert page.status_code == 200 and "An example project" in page.content.decode()
    refused = client.post(f"/projects/{project.pk}/edit/", {"name": "mine now"})
    assert refused.status_code == 403
    assert Project.objects.get(pk=project.pk).name == project.name
    api = client.get("/api/v1/projects/", {"role": "viewer"})
    assert [(p["id"], p["role"], p["is_example"]) for p in api.json()["results"]] == [(project.pk, "viewer", True)]
    models = client.get("/api/v1/uploads/models/").json()["results"]
    assert len(models) == 3  # the example's uploads are readable by its viewers


def test_an_example_whose_files_are_missing_is_skipped_with_the_reason(example_folders, settings):
    settings.NEUROX_EXAMPLES_UD_CONLLU = example_folders / "nowhere.conllu"
    lines = []
    loaded = load_examples(["minilm-ud"], small=True, log=lines.append)
    assert loaded[0].project is None and not Project.objects.exists()
    missing = example_folders / "nowhere.conllu"
    assert lines == [f"minilm-ud: skipped: the UD English-EWT dev corpus is not at {missing} "
                     "(set NEUROX_EXAMPLES_UD_CONLLU)"]


def test_the_command_refuses_an_unknown_example(example_folders):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No example nonsense; choose among minilm-ud, encoders, causal-lms, "
                                           "translation"):
        call_command("load_examples", "nonsense")
    assert not Project.objects.exists()


def test_the_examples_account_gets_the_quotas_the_catalogue_needs_on_every_load_keeping_larger_ones():
    from analysis.runs.example_projects import EXAMPLES_STORAGE_BYTES, examples_account
    from analysis.examples.catalogue import EXAMPLES

    account = UserFactory(username=EXAMPLES_USERNAME, max_concurrent_runs=1, storage_quota_bytes=10**9)
    assert account.has_usable_password()
    examples_account()  # an account from an older catalogue: raised to what the examples need now
    account.refresh_from_db()
    assert (account.max_concurrent_runs, account.storage_quota_bytes) == (len(EXAMPLES), EXAMPLES_STORAGE_BYTES)
    assert account.has_usable_password()  # an existing account's password is not touched

    account.storage_quota_bytes = 4 * EXAMPLES_STORAGE_BYTES  # an operator's larger figure stays
    account.save()
    examples_account()
    account.refresh_from_db()
    assert account.storage_quota_bytes == 4 * EXAMPLES_STORAGE_BYTES

    account.delete()
    fresh = examples_account()
    assert not fresh.has_usable_password() and fresh.max_concurrent_runs == len(EXAMPLES)
