"""The admin shows each result's bytes; unreferenced results are reclaimed (admin action and command), and a
result a run refers to never is."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from django.core.management import call_command

from analysis.runs import services
from analysis.models import Result, Run
from tests.factories import UserFactory
from tests.support.runs import request_for


def finished_run(people, attached, capture):
    """A succeeded run with four results: a store, statistics, two rankings (see request_for)."""
    with capture(execute=True):
        return services.create_run(people["owner"], people["project"], request_for(attached))


def test_the_admin_lists_bytes_per_result(client, people, attached, django_capture_on_commit_callbacks):
    finished_run(people, attached, django_capture_on_commit_callbacks)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.get("/admin/analysis/result/").content.decode()
    for result in Result.objects.all():
        assert f"({result.bytes:,})" in page


def test_results_no_run_refers_to_are_reclaimed_with_their_files(people, attached, folders,
                                                                django_capture_on_commit_callbacks):
    run = finished_run(people, attached, django_capture_on_commit_callbacks)
    paths = [Path(folders["results"]) / r.path for r in Result.objects.all()]
    assert all(p.exists() for p in paths)
    assert services.reclaim_unreferenced_results() == (0, 0)  # the run refers to every one

    Run.objects.filter(pk=run.pk).delete()
    out = StringIO()
    call_command("reclaim_results", stdout=out)
    assert out.getvalue().startswith("Reclaimed 4 result(s)")
    assert not Result.objects.exists() and not any(p.exists() for p in paths)


def test_the_admin_action_keeps_results_a_run_refers_to(client, people, attached,
                                                        django_capture_on_commit_callbacks):
    run = finished_run(people, attached, django_capture_on_commit_callbacks)
    kept = run.steps.first().result_key
    run.steps.exclude(result_key=kept).delete()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    response = client.post("/admin/analysis/result/", {
        "action": "reclaim", "_selected_action": list(Result.objects.values_list("pk", flat=True))}, follow=True)
    assert "Reclaimed 3 result(s)" in response.content.decode()
    assert list(Result.objects.values_list("key", flat=True)) == [kept]
