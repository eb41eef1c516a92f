"""The runs API: the owner / editor / viewer / stranger / anonymous matrix for every endpoint, creating a run and
reading it back once computed, log paging by seq, cancel and retry, and results with their file downloads."""

from __future__ import annotations

import json

import pytest

from analysis.runs import services
from analysis.models import LogLine, Run, RunState, Step, StepKind, StepState
from tests.support.clients import api_client_for
from tests.support.roles import MEMBERS, ROLES, WRITERS, expected_status
from tests.support.runs import request_for, two_runs_over_a_limit_of_one

pytestmark = pytest.mark.django_db


def run_url(run, tail=""):
    return f"/api/v1/runs/{run.pk}/{tail}"


# ---------------------------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("who", ROLES)
def test_creating_a_run_needs_the_editor_role(people, attached, who, django_capture_on_commit_callbacks):
    client = api_client_for(people, who)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/api/v1/projects/{people['project'].pk}/runs/", request_for(attached),
                               format="json")
    assert response.status_code == expected_status(who, WRITERS, ok=201), response.content
    if response.status_code == 201:
        run = Run.objects.get()
        assert response.json()["id"] == run.pk and run.created_by == people[who]
        assert [s["kind"] for s in response.json()["steps"]] == [StepKind.EXTRACT, StepKind.STATISTICS,
                                                                 StepKind.RANKING, StepKind.RANKING]
    else:
        assert Run.objects.count() == Step.objects.count() == 0
    if who == "viewer":
        assert response.json()["detail"] == "Viewers cannot change this project; ask an owner for the editor role."


@pytest.mark.parametrize("who", ROLES)
def test_listing_a_projects_runs_is_for_members(people, queued_run, who):
    response = api_client_for(people, who).get(f"/api/v1/projects/{people['project'].pk}/runs/")
    assert response.status_code == expected_status(who, MEMBERS), response.content
    if response.status_code == 200:
        assert [r["id"] for r in response.json()["results"]] == [queued_run.pk]


@pytest.mark.parametrize("who", ROLES)
def test_the_list_of_all_runs_shows_only_your_projects_runs(people, queued_run, who):
    response = api_client_for(people, who).get("/api/v1/runs/")
    if who == "anonymous":
        assert response.status_code == 401
        return
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == ([queued_run.pk] if who in MEMBERS else [])


@pytest.mark.parametrize("tail", ["", "logs/", "results/"])
@pytest.mark.parametrize("who", ROLES)
def test_reading_a_run_is_for_members(people, queued_run, who, tail):
    response = api_client_for(people, who).get(run_url(queued_run, tail))
    assert response.status_code == expected_status(who, MEMBERS), response.content
    if who == "stranger":
        assert response.json()["detail"] == "No such run."


@pytest.mark.parametrize("who", ROLES)
def test_cancelling_needs_the_editor_role(people, queued_run, who):
    response = api_client_for(people, who).post(run_url(queued_run, "cancel/"))
    assert response.status_code == expected_status(who, WRITERS), response.content
    queued_run.refresh_from_db()
    assert queued_run.state == (RunState.CANCELLED if who in WRITERS else RunState.QUEUED)
    if who == "viewer":
        assert response.json()["detail"] == "Viewers cannot cancel runs."


@pytest.mark.parametrize("who", ROLES)
def test_retrying_needs_the_editor_role(people, queued_run, who, django_capture_on_commit_callbacks):
    services.cancel_run(people["owner"], queued_run)
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client_for(people, who).post(run_url(queued_run, "retry/"))
    assert response.status_code == expected_status(who, WRITERS), response.content
    queued_run.refresh_from_db()
    assert queued_run.state == (RunState.QUEUED if who in WRITERS else RunState.CANCELLED)


@pytest.mark.parametrize("who", ROLES)
def test_downloading_a_result_file_is_for_members(people, finished_run, who):
    step = finished_run.steps.get(kind=StepKind.RANKING, params__method="anova")
    response = api_client_for(people, who).get(run_url(finished_run, f"results/{step.pk}/files/{step.result_key}"
                                                                     ".json"))
    assert response.status_code == expected_status(who, MEMBERS), response.content
    if response.status_code == 200:
        assert "attachment" in response["Content-Disposition"]
        assert json.loads(b"".join(response.streaming_content))["method"] == "anova"


# ---------------------------------------------------------------------------------------------- behaviour


def test_a_run_created_through_the_api_reads_back_with_its_results(people, attached,
                                                                   django_capture_on_commit_callbacks):
    client = api_client_for(people, "editor")
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(f"/api/v1/projects/{people['project'].pk}/runs/", request_for(attached),
                              format="json")
    assert created.status_code == 201, created.content
    run = client.get(run_url(Run.objects.get(pk=created.json()["id"]))).json()
    assert run["state"] == RunState.SUCCEEDED and run["created_by"] == "eddie" and run["admitted"] is True
    extract = run["steps"][0]
    assert (extract["state"], extract["done"], extract["total"], extract["unit"], extract["reused"]) == (
        StepState.SUCCEEDED, 280, 280, "words", False)
    results = {r["title"]: r for r in client.get(f"/api/v1/runs/{run['id']}/results/").json()}
    anova = next(r for title, r in results.items() if title.startswith("Ranking anova"))
    assert anova["data"]["method"] == "anova" and anova["data"]["confidence"] is not None
    statistics = next(r for title, r in results.items() if title.startswith("Neuron statistics"))
    assert statistics["data"] is None and statistics["files"]
    download = client.get(statistics["files"][0]["url"])
    assert download.status_code == 200 and b"".join(download.streaming_content)


def test_a_second_run_through_the_api_shows_every_step_reused(people, attached,
                                                              django_capture_on_commit_callbacks):
    client = api_client_for(people, "owner")
    url = f"/api/v1/projects/{people['project'].pk}/runs/"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, request_for(attached), format="json")
        again = client.post(url, request_for(attached), format="json").json()
    steps = client.get(f"/api/v1/runs/{again['id']}/").json()["steps"]
    assert all(s["reused"] and s["state"] == StepState.SUCCEEDED for s in steps)


@pytest.mark.parametrize("body, field, message", [
    ({"rankings": [{"method": "magic"}]}, "rankings", "unknown method 'magic'"),
    ({"layers": [7]}, "layers", "Layer 7 does not exist"),
    ({"corpus": "many"}, "corpus", "A valid integer is required."),
])
def test_a_bad_request_says_what_to_change_and_stores_nothing(people, attached, body, field, message):
    response = api_client_for(people, "owner").post(f"/api/v1/projects/{people['project'].pk}/runs/",
                                                    request_for(attached, **body), format="json")
    assert response.status_code == 400
    assert any(message in text for text in json.dumps(response.json()).split('"')), response.json()
    assert Run.objects.count() == Step.objects.count() == LogLine.objects.count() == 0


def test_logs_page_by_seq(people, queued_run):
    services.write_log(queued_run.pk, [f"line {i}" for i in range(2, 8)])  # line 1 is "Run created by …"
    client = api_client_for(people, "viewer")
    first = client.get(run_url(queued_run, "logs/?after=0&limit=3")).json()
    assert [line["seq"] for line in first["lines"]] == [1, 2, 3] and first["more"] is True
    rest = client.get(run_url(queued_run, f"logs/?after={first['last_seq']}")).json()
    assert [line["text"] for line in rest["lines"]] == [f"line {i}" for i in range(4, 8)]
    assert rest["more"] is False and rest["last_seq"] == 7
    empty = client.get(run_url(queued_run, "logs/?after=7")).json()
    assert (empty["lines"], empty["last_seq"], empty["more"]) == ([], 7, False)


def test_logs_refuse_a_negative_after(people, queued_run):
    response = api_client_for(people, "owner").get(run_url(queued_run, "logs/?after=-1"))
    assert response.status_code == 400 and "after" in json.dumps(response.json())


def test_cancelling_a_finished_run_is_a_conflict(people, queued_run):
    services.cancel_run(people["owner"], queued_run)
    response = api_client_for(people, "owner").post(run_url(queued_run, "cancel/"))
    assert response.status_code == 409
    assert response.json()["detail"] == "This run has already finished; there is nothing to cancel."


def test_retrying_a_queued_run_is_a_conflict(people, queued_run):
    response = api_client_for(people, "owner").post(run_url(queued_run, "retry/"))
    assert response.status_code == 409
    assert response.json()["detail"] == "Only a failed or cancelled run can be retried."
    queued_run.refresh_from_db()
    assert queued_run.state == RunState.QUEUED


def test_a_file_outside_the_results_listing_is_not_found(people, finished_run):
    step = finished_run.steps.get(kind=StepKind.STATISTICS)
    client = api_client_for(people, "owner")
    for name in ("../../../etc/passwd", "stats/../../rankings", "nothing.npy"):
        assert client.get(run_url(finished_run, f"results/{step.pk}/files/{name}")).status_code == 404
    other = services.create_run(people["owner"], people["project"], request_for(
        {"model": finished_run.project.model_uploads.get(), "corpus": finished_run.project.corpus_uploads.get()}))
    ranking = finished_run.steps.get(kind=StepKind.RANKING, params__method="anova")
    name = f"results/{ranking.pk}/files/{ranking.result_key}.json"
    assert client.get(run_url(finished_run, name)).status_code == 200
    # a step of another run is not this run's result
    assert client.get(run_url(other, name)).status_code == 404


def test_queued_steps_show_their_position_in_the_fair_order_of_their_queue(people, queued_run):
    from datetime import timedelta

    other = Run.objects.create(project=people["project"], created_by=people["editor"], request={})
    extract = queued_run.steps.get(kind=StepKind.EXTRACT)
    earlier = extract.queued_at - timedelta(seconds=5)
    for queue, state in (("gpu", StepState.QUEUED), ("gpu", StepState.QUEUED), ("cpu", StepState.QUEUED),
                         ("gpu", StepState.RUNNING)):
        Step.objects.create(run=other, kind=StepKind.EXTRACT, title="ahead?", result_key="k", queue=queue,
                            state=state, queued_at=earlier)
    Step.objects.create(run=other, kind=StepKind.EXTRACT, title="behind", result_key="k", queue="gpu",
                        state=StepState.QUEUED, queued_at=extract.queued_at + timedelta(seconds=5))
    steps = api_client_for(people, "viewer").get(run_url(queued_run)).json()["steps"]
    positions = {step["kind"]: step["queue_position"] for step in steps}
    # the editor has a step running on gpu and the owner none: the owner's step goes first, though queued later
    assert positions == {"extract": 1, "statistics": None, "ranking": None}
    other_steps = api_client_for(people, "viewer").get(run_url(other)).json()["steps"]
    assert [step["queue_position"] for step in other_steps] == [2, 3, 1, None, 4]


def test_a_run_waiting_on_the_quota_says_so_in_its_payload(people, attached, django_capture_on_commit_callbacks):
    first, second = two_runs_over_a_limit_of_one(people, attached, django_capture_on_commit_callbacks)
    client = api_client_for(people, "viewer")
    assert client.get(run_url(first)).json()["waiting_reason"] == ""
    assert client.get(run_url(second)).json()["waiting_reason"] == (
        "Waiting: 1 of your runs are active and your limit is 1 at once; this one starts when one of them "
        "finishes.")


def test_a_run_not_yet_admitted_with_a_slot_free_gives_no_waiting_reason(people, queued_run):
    """It is admitted when dispatched; "0 of your runs are active and your limit is 2" would contradict itself."""
    Run.objects.filter(pk=queued_run.pk).update(admitted=False)
    assert api_client_for(people, "viewer").get(run_url(queued_run)).json()["waiting_reason"] == ""


def test_cross_model_rankings_through_the_api(people, attached, django_capture_on_commit_callbacks, tmp_path):
    from projects.services.attachments import attach_upload
    from tests.support.tiny_models import make_tiny_model
    from tests.support.uploads import upload_model

    second = upload_model(people["owner"], make_tiny_model("bert", tmp_path / "bert-2", seed=1), name="bert 2")
    attach_upload(people["owner"], people["project"], second)
    client = api_client_for(people, "editor")
    url = f"/api/v1/projects/{people['project'].pk}/runs/"
    body = request_for(attached, models=[attached["model"].pk, second.pk], rankings=[], statistics=False,
                       crossmodel=[{"method": "maxcorr"}])
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(url, body, format="json")
    assert created.status_code == 201, created.content
    results = client.get(f"/api/v1/runs/{created.json()['id']}/results/").json()
    cross = next(r for r in results if r["kind"] == "crossmodel")
    assert cross["data"]["method"] == "maxcorr" and len(cross["data"]["rankings"]) == 2
    one_model = client.post(url, {**body, "models": [second.pk]}, format="json")
    assert one_model.status_code == 400
    assert "compares two or more models" in json.dumps(one_model.json())
