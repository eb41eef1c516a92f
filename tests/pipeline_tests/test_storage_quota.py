"""The storage quota counts results (issue #18 item 3). The rule: a user's storage is their uploads plus the full
size of every distinct ready result that a step of a run they created refers to. A result two users' runs use
counts for both; the same result in two of one's own runs counts once; deleting one's runs frees it for them.
Uploads and new runs are refused beyond it, nothing stored."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Sum

from accounts import quotas
from analysis.models import Result, Run, Step
from analysis.runs import services
from analysis.runs.selectors import results_bytes_of
from projects import selectors as project_selectors
from projects.models import TestSetUpload
from projects.services.library import create_test_set_upload
from projects.uploads import UploadRefused
from tests.factories import ProjectFactory
from tests.support.clients import api_client_for
from tests.support.runs import request_for
from tests.support.uploads import attach_model_and_corpus

pytestmark = pytest.mark.django_db


def computed(user, project, request, capture) -> Run:
    with capture(execute=True):
        return services.create_run(user, project, request)


def all_results_bytes() -> int:
    return Result.objects.aggregate(total=Sum("bytes"))["total"]


def test_the_storage_counters_are_uploads_and_results(people, attached):
    owner = people["owner"]
    assert set(quotas.storage_use(owner)) == {"uploads", "results"}
    assert quotas.storage_used(owner) == project_selectors.storage_used_by(owner) > 0  # no results yet


def test_a_shared_result_counts_for_each_user_and_once_for_two_of_ones_own_runs(
        people, attached, django_capture_on_commit_callbacks):
    owner, editor, project = people["owner"], people["editor"], people["project"]
    first = computed(owner, project, request_for(attached), django_capture_on_commit_callbacks)
    total = all_results_bytes()
    assert total > 0 and results_bytes_of(owner) == total
    assert quotas.storage_used(owner) == project_selectors.storage_used_by(owner) + total

    second = computed(owner, project, request_for(attached), django_capture_on_commit_callbacks)
    assert all(s.reused for s in second.steps.all())
    assert results_bytes_of(owner) == total  # the same results in two of the owner's runs: once

    theirs = computed(editor, project, request_for(attached), django_capture_on_commit_callbacks)
    assert all(s.reused for s in theirs.steps.all())
    assert results_bytes_of(editor) == total  # shared by content: in full for the editor too
    assert quotas.storage_used(editor) == total  # the editor uploaded nothing

    theirs.delete()
    assert results_bytes_of(editor) == 0 and results_bytes_of(owner) == total  # deleting one's runs frees it
    first.delete()
    assert results_bytes_of(owner) == total  # still in the owner's second run
    second.delete()
    assert results_bytes_of(owner) == 0


def test_a_result_still_building_does_not_count_yet(people, attached, queued_run):
    extract = queued_run.steps.get(kind="extract")
    Result.objects.create(kind="store", key=extract.result_key, builder=extract, bytes=10**9)
    assert results_bytes_of(people["owner"]) == 0


def test_an_upload_is_refused_when_results_fill_the_quota_and_nothing_is_stored(
        people, attached, folders, settings, django_capture_on_commit_callbacks):
    owner = people["owner"]
    computed(owner, people["project"], request_for(attached), django_capture_on_commit_callbacks)
    uploads, results = project_selectors.storage_used_by(owner), results_bytes_of(owner)
    sentences = b"a short sentence .\n" * 20  # 380 bytes
    assert results > len(sentences)
    owner.storage_quota_bytes = uploads + len(sentences) + 10  # room for it if results did not count
    owner.save()
    files_before = sorted(p for p in folders["media"].rglob("*") if p.is_file())
    with pytest.raises(UploadRefused) as refused:
        create_test_set_upload(owner, file=SimpleUploadedFile("s.txt", sentences), name="sentences")
    assert refused.value.code == "quota"
    assert "storage quota is left" in refused.value.message and "results" in refused.value.message
    assert not TestSetUpload.objects.exists()
    assert sorted(p for p in folders["media"].rglob("*") if p.is_file()) == files_before
    assert project_selectors.storage_used_by(owner) == uploads


def test_a_run_whose_new_results_exceed_the_quota_is_refused_with_a_400(people, attached,
                                                                        django_capture_on_commit_callbacks):
    owner = people["owner"]
    owner.storage_quota_bytes = project_selectors.storage_used_by(owner) + 1_000
    owner.save()
    client = api_client_for(people, "owner")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/api/v1/projects/{people['project'].pk}/runs/", request_for(attached),
                               format="json")
    assert response.status_code == 400, response.content
    message = response.json()["fields"]["storage"][0]
    assert re.match(r"This run would add about [\d.]+ KB of results but only 1\.0 KB of your [\d.]+ MB storage "
                    r"quota is left", message), message
    assert Run.objects.count() == Step.objects.count() == 0

    owner.storage_quota_bytes = None  # the site default: plenty
    owner.save()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/api/v1/projects/{people['project'].pk}/runs/", request_for(attached),
                               format="json")
    assert response.status_code == 201, response.content


def test_reusing_anothers_results_counts_them_so_a_run_can_be_refused_for_it(
        people, attached, tiny_bert, django_capture_on_commit_callbacks):
    from django.core.exceptions import ValidationError

    computed(people["owner"], people["project"], request_for(attached), django_capture_on_commit_callbacks)
    stranger = people["stranger"]
    project = ProjectFactory(owner=stranger)
    theirs = attach_model_and_corpus(stranger, project, tiny_bert)  # the same files: the same content keys
    stranger.storage_quota_bytes = project_selectors.storage_used_by(stranger) + 100
    stranger.save()
    with pytest.raises(ValidationError) as refused:
        services.create_run(stranger, project, request_for(theirs))
    assert "reused from others' runs" in refused.value.message_dict["storage"][0]
    assert not Run.objects.filter(created_by=stranger).exists()
