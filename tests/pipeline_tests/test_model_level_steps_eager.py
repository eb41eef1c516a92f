"""Cross-model rankings (several stores) and model-level ablation (the model's own task along a ranking), with
tasks run in-process (eager): their steps and keys, results through the results API, reuse, the reasons a
person reads on bad input, and an encoder without a task of its own measured through a probe."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from analysis.workspace import results
from analysis.runs import services
from analysis.engine.model_ablation import PROBE_METRIC
from analysis.models import LogLine, Result, Run, RunState, Step, StepKind, StepState
from projects.services.attachments import attach_upload
from projects.services.library import create_test_set_upload
from tests.support.corpora import conllu_text
from tests.support.runs import request_for
from tests.support.tiny_models import make_tiny_model
from tests.support.uploads import upload_model

TEST_SENTENCES = b"the cat sat on the mat .\na dog ran to the park .\nmy cat likes tea .\nthis dog read a book .\n"


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    return make_tiny_model("gpt2", tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture
def test_set(people, attached):
    upload = create_test_set_upload(people["owner"], file=SimpleUploadedFile("test.txt", TEST_SENTENCES),
                                    name="four sentences")
    attach_upload(people["owner"], people["project"], upload)
    return upload


def _attach_model(people, model_dir, name):
    model = upload_model(people["owner"], model_dir, name=name)
    attach_upload(people["owner"], people["project"], model)
    return model


def start(people, request, capture):
    with capture(execute=True):
        run = services.create_run(people["owner"], people["project"], request)
    run.refresh_from_db()
    return run


def _log(run):
    return list(run.log_lines.values_list("text", flat=True))


# ------------------------------------------------------------------------------------------------ cross-model


def crossmodel_request(two_berts, crossmodel):
    return request_for(two_berts, models=[two_berts["model"].pk, two_berts["second"].pk], rankings=[],
                       statistics=False, crossmodel=crossmodel)


def test_crossmodel_rankings_cover_every_model_and_are_read_through_the_results_api(
        people, two_berts, folders, django_capture_on_commit_callbacks):
    run = start(people, crossmodel_request(two_berts, [{"method": "maxcorr"}, {"method": "svcca"},
                                                       {"method": "linreg", "ridge": 0.01}]),
                django_capture_on_commit_callbacks)
    assert run.state == RunState.SUCCEEDED, _log(run)
    steps = list(run.steps.order_by("id"))
    assert [s.kind for s in steps] == [StepKind.EXTRACT] * 2 + [StepKind.CROSSMODEL] * 3
    cross = steps[2:]
    assert all(set(s.needs.all()) == set(steps[:2]) and s.queue == "cpu" for s in cross)
    assert all(s.unit == "row passes" and s.done == s.total > 0 for s in cross)
    found = {r.step: r for r in results.results_of(run)}
    store_keys = sorted(s.result_key for s in steps[:2])
    for step in cross:
        data = found[step.pk].data
        assert data["method"] == step.params["method"] and data["store_keys"] == store_keys
        assert [r["store_key"] for r in data["rankings"]] == store_keys
        assert all(len(r["order"]) == len(r["neurons"]) == 96 for r in data["rankings"])  # 3 layers × 32
    assert found[cross[2].pk].data["rankings"][0]["params"]["ridge"] == 0.01


def test_a_second_crossmodel_run_reuses_the_result_whatever_the_model_order(
        people, two_berts, folders, django_capture_on_commit_callbacks):
    first = start(people, crossmodel_request(two_berts, [{"method": "mincorr"}]), django_capture_on_commit_callbacks)
    results_before = Result.objects.count()
    request = crossmodel_request(two_berts, [{"method": "mincorr"}])
    request["models"].reverse()
    again = start(people, request, django_capture_on_commit_callbacks)
    assert first.state == again.state == RunState.SUCCEEDED
    assert all(s.reused for s in again.steps.all())
    assert Result.objects.count() == results_before


@pytest.mark.parametrize("crossmodel, message", [
    ([{"method": "cka"}], "Cross-model ranking 1: unknown method 'cka'; choose one of maxcorr, mincorr, linreg"),
    ([{"method": "maxcorr", "ridge": 1}], "maxcorr takes no option ridge"),
    ([{"method": "svcca", "variance_kept": 1.5}], "variance_kept is a number above 0 and at most 1"),
    ([{"method": "linreg", "ridge": -1}], "ridge is a number from 0 to 1000"),
    ("maxcorr", "Give a list of cross-model rankings"),
])
def test_a_bad_crossmodel_request_says_what_to_change_and_stores_nothing(people, two_berts, crossmodel, message):
    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"], crossmodel_request(two_berts, crossmodel))
    assert any(message in text for text in caught.value.message_dict["crossmodel"]), caught.value.message_dict
    assert Run.objects.count() == Step.objects.count() == LogLine.objects.count() == 0


def test_crossmodel_with_one_model_is_refused(people, attached):
    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"],
                            request_for(attached, crossmodel=[{"method": "maxcorr"}]))
    assert caught.value.message_dict["crossmodel"][0].startswith(
        "Cross-model correlation compares two or more models; choose at least two models")
    assert Run.objects.count() == Step.objects.count() == 0


# ------------------------------------------------------------------------------------------------ model ablation


def ablation_request(attached, model, test_set, **ablation):
    return request_for(attached, models=[model.pk], rankings=[{"method": "probeless", "bootstrap": 0}],
                       statistics=False, model_ablation={"test_set": test_set.pk, **ablation})


def test_model_ablation_of_a_causal_lm_gives_a_loss_curve_per_mode(
        people, attached, test_set, tiny_gpt2, folders, django_capture_on_commit_callbacks):
    gpt2 = _attach_model(people, tiny_gpt2, "tiny gpt2")
    run = start(people, ablation_request(attached, gpt2, test_set, percents=[50, 100], random_seeds=2),
                django_capture_on_commit_callbacks)
    assert run.state == RunState.SUCCEEDED, _log(run)
    ranking, ablation = run.steps.get(kind=StepKind.RANKING), run.steps.get(kind=StepKind.MODEL_ABLATION)
    assert list(ablation.needs.all()) == [ranking] and ablation.queue == "gpu"
    assert ablation.params["ranking_key"] == ranking.result_key and ablation.params["test_set"] == test_set.pk
    # the baseline, then 2 points for each of top and bottom, then a baseline and 2 points per random seed
    assert (ablation.done, ablation.total, ablation.unit) == (11, 11, "evaluations")
    curve = next(r for r in results.results_of(run) if r.step == ablation.pk).data
    assert (curve["task"], curve["primary"], curve["metrics"]) == ("causal-lm", "loss", ["loss", "perplexity"])
    assert curve["curves"]["top"]["loss"][-1] != curve["baseline"]["loss"]  # removing every neuron changes it
    assert curve["x"]["count"] == [0, curve["total_neurons"] // 2, curve["total_neurons"]]
    assert set(curve["curves"]) == {"top", "bottom", "random"} and len(curve["random_curves"]) == 2
    for order, values in curve["curves"].items():
        assert len(values[curve["primary"]]) == 3 and values[curve["primary"]][0] == curve["baseline"][
            curve["primary"]]
    assert curve["params"]["ranking_method"] == "probeless"


def test_a_second_model_ablation_run_reuses_the_curve(people, attached, test_set, tiny_gpt2, folders,
                                                       django_capture_on_commit_callbacks):
    gpt2 = _attach_model(people, tiny_gpt2, "tiny gpt2")
    request = ablation_request(attached, gpt2, test_set, percents=[100], modes=["top"])
    first = start(people, request, django_capture_on_commit_callbacks)
    before = Result.objects.count()
    again = start(people, request, django_capture_on_commit_callbacks)
    assert first.state == again.state == RunState.SUCCEEDED
    assert again.steps.get(kind=StepKind.MODEL_ABLATION).reused
    assert Result.objects.count() == before
    changed = start(people, ablation_request(attached, gpt2, test_set, percents=[50], modes=["top"]),
                    django_capture_on_commit_callbacks)
    assert not changed.steps.get(kind=StepKind.MODEL_ABLATION).reused  # other params, another curve


def test_an_encoder_without_a_masked_lm_head_is_measured_by_a_probe_read_through_the_ablated_model(
        people, attached, test_set, headless_bert, folders, django_capture_on_commit_callbacks):
    encoder = _attach_model(people, headless_bert, "headless bert")
    request = ablation_request(attached, encoder, test_set, percents=[50, 100], random_seeds=2)
    run = start(people, request, django_capture_on_commit_callbacks)
    assert run.state == RunState.SUCCEEDED, _log(run)
    step = run.steps.get(kind=StepKind.MODEL_ABLATION)
    curve = next(r for r in results.results_of(run) if r.step == step.pk).data
    assert (curve["task"], curve["primary"], curve["metrics"]) == ("probe", "accuracy", ["accuracy"])
    assert curve["metric_description"] == PROBE_METRIC
    assert "neurons zeroed inside the model" in curve["metric_description"]
    # the corpus's last 20 % of sentences (40 sentences of 7 words) are scored, read through the model
    assert (curve["task_info"]["sentences"], curve["task_info"]["words"]) == (8, 56)
    assert set(curve["curves"]) == {"top", "bottom", "random"} and len(curve["random_curves"]) == 2
    baseline = curve["baseline"]["accuracy"]
    # read through the unablated model, the probe scores what it scored on the stored activations
    assert baseline == pytest.approx(curve["task_info"]["probe_test_accuracy_from_store"], abs=1e-6)
    for values in curve["curves"].values():
        assert len(values["accuracy"]) == 3 and values["accuracy"][0] == baseline
        assert all(0 <= v <= 1 for v in values["accuracy"])
    assert curve["curves"]["top"]["accuracy"][-1] < baseline  # every neuron zeroed: the probe sees nothing
    log = _log(run)
    assert any("“headless bert” (BertModel) is an encoder without a masked-LM head, so the metric is probe "
               "accuracy on the corpus's test sentences" in line for line in log), log


def test_a_headless_encoder_over_an_unlabelled_corpus_fails_with_what_to_choose(
        people, attached, test_set, headless_bert, folders, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from projects.services.library import create_corpus_upload

    encoder = _attach_model(people, headless_bert, "headless bert")
    plain = create_corpus_upload(people["owner"], file=SimpleUploadedFile("plain.conllu", conllu_text(10).encode()),
                                 label_column="", name="unlabelled")
    attach_upload(people["owner"], people["project"], plain)
    request = {**ablation_request(attached, encoder, test_set, percents=[100], modes=["top"]), "corpus": plain.pk,
               "rankings": [{"method": "variance", "bootstrap": 0}]}
    run = start(people, request, django_capture_on_commit_callbacks)
    assert run.state == RunState.FAILED
    step = run.steps.get(kind=StepKind.MODEL_ABLATION)
    assert step.state == StepState.FAILED
    assert "is an encoder without a masked-LM head" in step.error and "has no labels" in step.error
    assert "Traceback" not in run.error
    assert not Result.objects.filter(key=step.result_key).exists()


@pytest.mark.parametrize("ablation, message", [
    ({"test_set": 99999}, "test_set: choose one of this project's test sets"),
    ({"test_set": "SELF", "percents": [0]}, "percents: the shares of neurons to remove"),
    ({"test_set": "SELF", "random_seeds": 0}, "random_seeds: how many random removal orders"),
    ({"test_set": "SELF", "modes": ["zero_out"]}, "modes: choose among bottom, random, top"),
    ({"percents": [10]}, "model_ablation is false, or an object with test_set"),
])
def test_a_bad_model_ablation_request_says_what_to_change_and_stores_nothing(people, attached, test_set,
                                                                           ablation, message):
    if ablation.get("test_set") == "SELF":
        ablation["test_set"] = test_set.pk
    request = request_for(attached, model_ablation=ablation)
    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"], request)
    assert any(message in text for text in caught.value.message_dict["model_ablation"]), caught.value.message_dict
    assert Run.objects.count() == Step.objects.count() == LogLine.objects.count() == 0


def test_model_ablation_needs_a_ranking_of_the_run(people, attached, test_set):
    request = request_for(attached, rankings=[], model_ablation={"test_set": test_set.pk})
    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"], request)
    assert "removes neurons along a ranking of this run" in caught.value.message_dict["model_ablation"][0]
    assert Run.objects.count() == 0


def test_an_encoder_decoder_needs_a_test_set_with_references(people, attached, test_set, tmp_path):
    t5 = _attach_model(people, make_tiny_model("t5", tmp_path / "tiny-t5"), "tiny t5")
    with pytest.raises(ValidationError) as caught:
        services.create_run(people["owner"], people["project"], ablation_request(attached, t5, test_set))
    assert "tiny t5 is an encoder-decoder, measured by BLEU against references, and the test set “four " \
           "sentences” has none" in caught.value.message_dict["model_ablation"][0]
    assert Run.objects.count() == Step.objects.count() == 0


def test_model_ablation_of_a_masked_lm_encoder_measures_masked_lm_loss(people, attached, test_set, folders,
                                                                      django_capture_on_commit_callbacks):
    run = start(people, ablation_request(attached, attached["model"], test_set, percents=[100], modes=["top"]),
                django_capture_on_commit_callbacks)
    assert run.state == RunState.SUCCEEDED, _log(run)
    ablation = run.steps.get(kind=StepKind.MODEL_ABLATION)
    curve = next(r for r in results.results_of(run) if r.step == ablation.pk).data
    assert (curve["task"], set(curve["curves"])) == ("masked-lm", {"top"})


def test_model_ablation_along_an_mlp_ranking_edits_the_mlp_neurons(people, attached, test_set, tiny_gpt2, folders,
                                                                    django_capture_on_commit_callbacks):
    gpt2 = _attach_model(people, tiny_gpt2, "tiny gpt2")
    request = ablation_request(attached, gpt2, test_set, percents=[100], modes=["top"])
    run = start(people, {**request, "neuron_sets": ["mlp"]}, django_capture_on_commit_callbacks)
    assert run.state == RunState.SUCCEEDED, _log(run)
    ablation = run.steps.get(kind=StepKind.MODEL_ABLATION)
    curve = next(r for r in results.results_of(run) if r.step == ablation.pk).data
    assert curve["total_neurons"] == 2 * 64  # two blocks of 64 mlp neurons
    assert curve["curves"]["top"]["loss"][-1] != curve["baseline"]["loss"]


def test_a_run_over_an_encoder_decoder_ranks_and_describes_both_sides(people, attached, tmp_path,
                                                                       django_capture_on_commit_callbacks):
    """"hidden" of a translation model is its encoder's and its decoder's hidden states: statistics and rankings
    read both (they failed with "no neuron set 'hidden' in this store")."""
    marian = _attach_model(people, make_tiny_model("marian", tmp_path / "tiny-marian"), "tiny marian")
    run = start(people, request_for(attached, models=[marian.pk]), django_capture_on_commit_callbacks)
    assert run.state == RunState.SUCCEEDED, [s.error for s in run.steps.all()]
    ranking = next(r for r in results.results_of(run) if r.kind == StepKind.RANKING)
    assert {label.split(".")[0] for label in ranking.data["neurons"]} == {"enc", "dec"}
