"""Bounded runs (issue #18 item 1, and item 3's compute quota): every request parameter has a range, a run's cost
in compute-seconds is said before it starts, and a run over the per-run limit or the compute quota is refused
with a 400 saying the cost and the limit. Nothing is stored for a refused run."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from accounts.models import QuotaGroup
from analysis.engine import methods, model_ablation, probe_ablation
from analysis.models import Run, Step
from analysis.runs import estimates, services
from analysis.runs.selectors import compute_seconds_committed
from tests.support.clients import api_client_for, client_for
from tests.support.runs import request_for

pytestmark = pytest.mark.django_db


def post_run(people, request, who="owner"):
    return api_client_for(people, who).post(f"/api/v1/projects/{people['project'].pk}/runs/", request,
                                            format="json")


def refused(response, field):
    """The messages under ``field`` of a 400, after checking that no run (and no step) was stored."""
    assert response.status_code == 400, response.content
    assert Run.objects.count() == 0 and Step.objects.count() == 0
    return " ".join(response.json()["fields"][field])


# ------------------------------------------------------------------------------------------------ the abuse


def test_a_probe_ablation_with_200000_percents_is_a_400_naming_the_range(people, attached):
    percents = [i / 2000 for i in range(1, 200_001)]  # 0.0005 … 100, every one inside the value range
    message = refused(post_run(people, request_for(attached, probe_ablation={"percents": percents})),
                      "probe_ablation")
    assert f"1 to {probe_ablation.MAX_POINTS} values" in message and "percents" in message


def test_2000_rankings_are_a_400_naming_the_limit(people, attached):
    rankings = [{"method": "probeless", "bootstrap": b} for b in range(2, 2002)]
    message = refused(post_run(people, request_for(attached, rankings=rankings)), "rankings")
    assert f"at most {services.MAX_ITEMS['rankings']} rankings" in message


def test_bootstrap_of_a_billion_is_a_400_naming_the_range(people, attached):
    message = refused(post_run(people, request_for(attached, rankings=[{"method": "anova", "bootstrap": 10**9}])),
                      "rankings")
    assert f"from 2 to {methods.MAX_BOOTSTRAP}" in message and "1000000000" in message


@pytest.mark.parametrize("field", ["probe_ablation", "model_ablation"])
def test_random_seeds_of_a_billion_are_a_400_naming_the_range(people, attached, field):
    value = {"random_seeds": 10**9}
    if field == "model_ablation":
        value["test_set"] = 10**6  # the range is said whatever else is wrong
    message = refused(post_run(people, request_for(attached, **{field: value})), field)
    maximum = (probe_ablation if field == "probe_ablation" else model_ablation).MAX_RANDOM_SEEDS
    assert f"random_seeds: how many random" in message and f"from 1 to {maximum}" in message


def test_a_seed_outside_its_range_is_a_400(people, attached):
    message = refused(post_run(people, request_for(attached, seed=2**40)), "seed")
    assert "from 0 to 4294967295" in message


def test_a_run_within_every_range_but_too_big_for_the_site_limit_is_refused_with_cost_and_limit(
        people, attached, settings):
    """The issue's 2,000 rankings within the list limit: 20 rankings of 1,000 resamples each, on a corpus of
    ten million words (its count set on the row: the cost model reads the corpus's size, not its text)."""
    settings.NEUROX_DEFAULT_MAX_RUN_COMPUTE_SECONDS = 4 * 3600
    attached["corpus"].__class__.objects.filter(pk=attached["corpus"].pk).update(n_words=10**7, n_sentences=5 * 10**5)
    rankings = [{"method": "lca", "bootstrap": 1000}] * 20
    message = refused(post_run(people, request_for(attached, rankings=rankings)), "compute")
    assert re.search(r"This run would take about [\d,]+ (days|h)", message)
    assert "your limit per run is 4 h (14,400 s)" in message and "fewer bootstrap resamples" in message


# ------------------------------------------------------------------------------------------------ the per-run limit


def test_the_per_run_limit_from_the_users_own_value(people, attached):
    owner = people["owner"]
    cost = estimates.estimate(people["project"], request_for(attached)).compute_seconds
    owner.max_run_compute_seconds = int(cost) - 1
    owner.save()
    message = refused(post_run(people, request_for(attached)), "compute")
    assert f"({cost:,.0f} compute-seconds); your limit per run is" in message
    assert f"({int(cost) - 1:,} s)" in message
    owner.max_run_compute_seconds = int(cost) + 1
    owner.save()
    assert post_run(people, request_for(attached)).status_code == 201


def test_the_per_run_limit_from_the_quota_group(people, attached):
    owner = people["owner"]
    owner.quota_group = QuotaGroup.objects.create(name="Students", max_run_compute_seconds=1)
    owner.save()
    assert "your limit per run is under a minute (1 s)" in refused(post_run(people, request_for(attached)), "compute")
    # the editor, in no group, has the site default
    assert post_run(people, request_for(attached), who="editor").status_code == 201


def test_the_new_run_page_shows_the_refusal_as_the_forms_error(people, attached):
    owner = people["owner"]
    owner.max_run_compute_seconds = 1
    owner.save()
    response = client_for(people, "owner").post(f"/projects/{people['project'].pk}/runs/new/", {
        "models": [attached["model"].pk], "corpus": attached["corpus"].pk, "neuron_sets": ["hidden"],
        "statistics": "on", "seed": 0})
    assert response.status_code == 400 and Run.objects.count() == 0
    assert "This run would take" in response.content.decode() and "your limit per run is" in response.content.decode()


# ------------------------------------------------------------------------------------------------ the compute quota


def test_the_compute_quota_counts_unfinished_runs_and_refuses_beyond_it(
        people, attached, django_capture_on_commit_callbacks):
    owner = people["owner"]
    cost = estimates.estimate(people["project"], request_for(attached)).compute_seconds
    owner.compute_quota_seconds = int(cost * 1.5)
    owner.save()
    with django_capture_on_commit_callbacks(execute=False):  # queued, never computed: its cost is held
        services.create_run(owner, people["project"], request_for(attached))
    assert compute_seconds_committed(owner) == pytest.approx(cost)
    response = post_run(people, request_for(attached, seed=1))
    assert response.status_code == 400 and Run.objects.count() == 1
    message = " ".join(response.json()["fields"]["compute"])
    assert f"of your compute quota of {estimates.limit_text(int(cost * 1.5))} per 30 days is left" in message
    assert "held by your runs that have not finished" in message


def test_the_compute_quota_says_when_the_period_frees_up(people, attached, django_capture_on_commit_callbacks):
    owner = people["owner"]
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(owner, people["project"], request_for(attached))
    run.refresh_from_db()
    Step.objects.filter(run=run).update(compute_seconds=3600)
    owner.compute_quota_seconds = 3600 * run.steps.count()
    owner.save()
    message = refused_after(post_run(people, request_for(attached, seed=1)), 1)
    frees = (run.finished_at + timezone.timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    assert f"the oldest of it leaves the period on {frees} UTC" in message
    assert f"({3600 * run.steps.count():,} s used or held" in message


def refused_after(response, runs: int) -> str:
    assert response.status_code == 400 and Run.objects.count() == runs, response.content
    return " ".join(response.json()["fields"]["compute"])


def test_a_run_that_only_reuses_costs_nothing_and_passes_a_spent_quota(
        people, attached, django_capture_on_commit_callbacks):
    owner = people["owner"]
    with django_capture_on_commit_callbacks(execute=True):
        services.create_run(owner, people["project"], request_for(attached))
    owner.compute_quota_seconds = 0
    owner.save()
    assert estimates.estimate(people["project"], request_for(attached)).compute_seconds == 0
    assert post_run(people, request_for(attached)).status_code == 201


# ------------------------------------------------------------------------------------------------ normal requests


def test_a_normal_request_passes_and_stores_each_steps_cost(people, attached):
    response = post_run(people, request_for(attached, probe_ablation=True))
    assert response.status_code == 201, response.content
    steps = Step.objects.filter(run_id=response.json()["id"])
    assert all(step.estimated_seconds > 0 for step in steps)
    assert sum(s.estimated_seconds for s in steps) == pytest.approx(
        estimates.estimate(people["project"], request_for(attached, probe_ablation=True)).compute_seconds)


def test_each_step_kinds_cost_grows_with_its_work():
    work = estimates.Work(words=25_000, units=2688, unit_squares=(2 * 2688) ** 2, test_words=3000)
    bigger = estimates.Work(words=50_000, units=2688, unit_squares=(2 * 2688) ** 2, test_words=6000,
                            n_parameters=2 * estimates.MINILM_PARAMETERS)
    cases = [("extract", {}), ("statistics", {}), ("ranking", {"method": "lca", "bootstrap": 0}),
             ("probe_ablation", {"percents": [10, 50], "random_seeds": 2, "modes": ["retrain"]}),
             ("crossmodel", {"method": "svcca"}),
             ("model_ablation", {"percents": [10, 50], "random_seeds": 1, "modes": ["top"]})]
    for kind, params in cases:
        assert estimates.step_seconds(kind, params, bigger) > estimates.step_seconds(kind, params, work) > 1, kind
    one = estimates.step_seconds("ranking", {"method": "anova", "bootstrap": 0}, work)
    assert estimates.step_seconds("ranking", {"method": "anova", "bootstrap": 20}, work) > 5 * (one - 1)


def test_the_estimate_shows_the_cost_and_the_limits(people, attached):
    owner = people["owner"]
    owner.max_run_compute_seconds, owner.compute_quota_seconds = 7200, 36000
    owner.save()
    response = client_for(people, "owner").post(f"/projects/{people['project'].pk}/runs/new/estimate/", {
        "models": [attached["model"].pk], "corpus": attached["corpus"].pk, "neuron_sets": ["hidden"],
        "statistics": "on", "seed": 0})
    page = response.content.decode()
    assert response.status_code == 200
    compute = page.split('id="estimate-compute">', 1)[1].split("</dd>", 1)[0]
    assert "compute-seconds" in compute and "extract" in compute
    limits = page.split('id="estimate-limits"', 1)[1].split("</dd>", 1)[0]
    assert "2 h per run" in limits and "of 10 h per 30 days" in limits and "refused" not in limits
    owner.max_run_compute_seconds = 1
    owner.save()
    page = client_for(people, "owner").post(f"/projects/{people['project'].pk}/runs/new/estimate/", {
        "models": [attached["model"].pk], "corpus": attached["corpus"].pk, "neuron_sets": ["hidden"],
        "statistics": "on", "seed": 0}).content.decode()
    assert "this run is over it and would be refused" in page


@pytest.mark.parametrize("seconds, text", [(30, "under a minute"), (600, "about 10 min"), (3600, "about 1 h"),
                                           (19_200, "about 5 h 20 min"), (3 * 86400 + 7200, "about 3 days 2 h")])
def test_durations_in_words(seconds, text):
    assert estimates.duration_text(seconds) == text
