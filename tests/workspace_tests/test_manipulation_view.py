"""The Manipulation view on a finished run of a tiny BERT (eager pipeline; the realtime manipulate task runs in
the test process, the same code as a realtime worker): sliders from the statistics, presets, the output partial
with its changed tokens marked, its error answers, neurons from a ranking, and the permission matrix."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.urls import reverse

from analysis.runs import realtime
from analysis.models import RunState, StepKind
from analysis.workspace.recipes import clean_recipe
from analysis.workspace import RunView, ranking_of, statistics_of
from analysis.workspace.manipulation import presenter as manipulation_presenter
from tests.support.clients import client_for
from tests.support.roles import ROLES
from tests.support.runs import succeeded_steps

pytestmark = pytest.mark.django_db

MASKED = "the cat sat on the [MASK] ."


def page_url(people, run, query=""):
    return reverse("analysis:run-manipulation", args=[people["project"].pk, run.pk]) + (f"?{query}" if query else "")


def output_url(people, run, query=""):
    return reverse("analysis:run-manipulation-output", args=[people["project"].pk, run.pk]) + f"?{query}"


def stats_of(run):
    return statistics_of(succeeded_steps(run, StepKind.STATISTICS)[0])


def range_input(html: str, neuron: str) -> dict:
    tag = re.search(rf'<input type="range"[^>]*name="v\.{re.escape(neuron)}"[^>]*>', html, re.S).group(0)
    return {k: float(v) for k, v in re.findall(r'(min|max|value)="([^"]+)"', tag)}


def test_slider_ranges_and_marks_come_from_the_statistics(people, manip_run):
    stats = stats_of(manip_run)
    i = stats.position("L1:3")
    low, high, mean = (float(stats.arrays[k][i]) for k in ("min", "max", "mean"))
    html = client_for(people, "viewer").get(page_url(people, manip_run, "pools=L1:3,L2:5&sentence=" + MASKED)).content.decode()
    clamp = range_input(html, "L1:3")
    assert clamp["min"] == pytest.approx(low) and clamp["max"] == pytest.approx(high)
    assert clamp["value"] == pytest.approx(mean)  # a clamp starts at the neuron's mean
    verb_mean = float(stats.arrays["label_means"][i][stats.label_names.index("VERB")])
    assert f"VERB (mean {verb_mean:.2f})" in html  # the "as if this were a VERB" preset

    html = client_for(people, "viewer").get(page_url(people, manip_run, "pools=L1:3&op.L1:3=shift&sentence=a+b")).content.decode()
    shift = range_input(html, "L1:3")
    assert shift["min"] == pytest.approx(low - high) and shift["max"] == pytest.approx(high - low)
    assert shift["value"] == 0
    html = client_for(people, "viewer").get(page_url(people, manip_run, "pools=L1:3&op.L1:3=scale&sentence=a+b")).content.decode()
    low, high = manipulation_presenter.SCALE_RANGE
    assert range_input(html, "L1:3") == {"min": low, "max": high, "value": 1.0}


def test_slider_marks_and_a_value_outside_the_range():
    facts = {"min": -1.0, "max": 3.0, "mean": 0.5, "std": 1.0, "quantiles": {"0.05": -0.8, "0.95": 2.5},
             "label_means": {"NOUN": 0.0, "VERB": 2.0, "X": None}}
    clamp = manipulation_presenter.slider("L0:1", facts, "clamp", None)
    assert {m["name"]: m["value"] for m in clamp["marks"]} == {
        "min": -1.0, "5 %": -0.8, "mean": 0.5, "95 %": 2.5, "max": 3.0, "NOUN mean": 0.0, "VERB mean": 2.0}
    assert [p["label"] for p in clamp["presets"]] == ["NOUN", "VERB"]  # a label with no words gives no preset
    shift = manipulation_presenter.slider("L0:1", facts, "shift", 9.0)
    assert (shift["low"], shift["high"], shift["value"]) == (-4.0, 9.0, 9.0)  # widened, never clipped
    assert {m["name"]: m["value"] for m in shift["marks"]} == {"unchanged": 0.0, "as NOUN": -0.5, "as VERB": 1.5}


def test_label_shift_preset_values(people, manip_run):
    stats = stats_of(manip_run)
    names = stats.label_names
    neurons = ["L1:3", "L2:5", "L0:7"]
    shifts = manipulation_presenter.label_shift(stats, neurons, "NOUN", "VERB", 3.0)
    for label in neurons:
        means = stats.arrays["label_means"][stats.position(label)]
        expected = 3.0 * (means[names.index("VERB")] - means[names.index("NOUN")])
        assert shifts[label] == pytest.approx(float(expected))
    no_statistics = manipulation_presenter.label_shift(stats, ["L1:999"], "NOUN", "VERB", 3.0)
    assert no_statistics == {"L1:999": 0.0}

    html = client_for(people, "viewer").get(page_url(
        people, manip_run, "pools=L1:3,L2:5&corpus=3&preset_from=NOUN&preset_to=VERB&alpha=3")).content.decode()
    for label in ("L1:3", "L2:5"):
        assert range_input(html, label)["value"] == pytest.approx(shifts[label])
        assert re.search(rf'name="op\.{label}"[^>]*>\s*<option value="clamp">[^<]*</option>\s*<option value="scale">'
                         rf'[^<]*</option>\s*<option value="shift" selected>', html)
    assert re.search(r'name="positions" value="label" checked', html)  # at the words labelled NOUN
    assert re.search(r'<select id="manip-label" name="label">.*<option selected>NOUN</option>', html, re.S)
    assert "Applied: from NOUN towards VERB" in html


def test_label_positions_are_the_words_with_that_label(people, manip_run):
    store = RunView(manip_run).usable_models[0].store()
    labels = manipulation_presenter.sentence_labels(store, 3)
    recipe = clean_recipe(people["project"], {
        "model": RunView(manip_run).usable_models[0].pk, "corpus_sentence": 3, "sentence": "",
        "edits": [{"neuron": "L1:3", "operation": "shift", "value": 1.0}],
        "positions": {"mode": "label", "label": "VERB"}}, manip_run)
    assert recipe["sentence"] == " ".join(store.sentence(3))
    body = manipulation_presenter.realtime_request(recipe, RunView(manip_run))
    assert body["mode"] == "words" and body["words"] == [i for i, name in enumerate(labels) if name == "VERB"]


def test_a_word_without_a_label_is_not_taken_for_the_last_label():
    """Only the verb of a feats:Tense corpus has a label; the others are stored as -1 and must stay unlabelled
    (read as an index, -1 named the last label, "Pres", and the tense preset moved every word)."""
    from types import SimpleNamespace

    store = SimpleNamespace(sentence_offsets=np.array([0, 4]), label_names=["Past", "Pres"],
                            labels=np.array([-1, -1, 1, -1]))
    assert manipulation_presenter.sentence_labels(store, 0) == ["", "", "Pres", ""]


def test_output_partial_shows_original_and_manipulated_with_changes_marked(people, manip_run):
    edits = "&".join(f"op.L2:{u}=scale&v.L2:{u}=50" for u in range(32))
    pools = ",".join(f"L2:{u}" for u in range(32))
    answer = client_for(people, "viewer").get(output_url(people, manip_run, f"pools={pools}&{edits}&sentence={MASKED}&seq=7"))
    assert answer.status_code == 200 and answer["X-Manipulation-Seq"] == "7"
    assert re.fullmatch(r"view;dur=[\d.]+, worker;dur=[\d.]+", answer["Server-Timing"])
    html = answer.content.decode()
    assert "Predictions for word 5" in html and "<caption>Original</caption>" in html and "<caption>Manipulated</caption>" in html
    assert 'class="manip-changed"' in html and "(new)" in html and "The output changed" in html

    unchanged = client_for(people, "viewer").get(output_url(people, manip_run, f"pools=L1:3&op.L1:3=scale&v.L1:3=1&sentence={MASKED}"))
    assert unchanged.status_code == 200
    assert "No change in the predicted words or their order" in unchanged.content.decode()
    assert 'class="manip-changed"' not in unchanged.content.decode().split("</p>", 1)[1]


def test_side_by_side_marks_changed_tokens_of_generated_text():
    answer = {"task": "translation", "sentences": [{
        "words": ["the", "dog", "runs"], "identical": False,
        "original": {"text": "der hund lauf -t", "tokens": ["der", "hund", "lauf", "-t"], "changed": [0, 0, 0, 1]},
        "manipulated": {"text": "der hund lauf -te", "tokens": ["der", "hund", "lauf", "-te"],
                        "changed": [0, 0, 0, 1]}}]}
    shown = manipulation_presenter.side_by_side(answer)
    assert shown["manipulated"]["tokens"][-1] == ("-te", 1) and shown["changed_count"] == 1
    from django.template.loader import render_to_string

    html = render_to_string("analysis/workspace/_manip_output.html", {"shown": shown})
    assert "Original translation" in html and "Manipulated translation" in html
    assert '<mark class="manip-changed">-te<span class="visually-hidden"> (changed)</span></mark>' in html
    assert "<span>hund</span>" in html


@pytest.mark.parametrize("query,message", [
    ("pools=L9:1&sentence=the+cat", "layer 9 does not exist"),
    ("pools=L1:3&sentence=", "Type a sentence or pick one from the corpus"),
    ("pools=L1:3&sentence=the+cat&positions=words", "Tick at least one word"),
    ("pools=L1:3&sentence=the+cat+sat", "has no masked word"),  # found by the worker's engine
])
def test_output_partial_bad_input_gives_a_readable_message(people, manip_run, query, message):
    answer = client_for(people, "viewer").get(output_url(people, manip_run, query))
    assert answer.status_code == 400
    assert message in answer.content.decode() and "Traceback" not in answer.content.decode()


def test_output_partial_without_neurons_says_what_to_do(people, manip_run):
    answer = client_for(people, "viewer").get(output_url(people, manip_run, "sentence=the+cat"))
    assert answer.status_code == 200 and "Choose neurons" in answer.content.decode()


def test_no_realtime_worker_is_a_503_with_a_message(people, manip_run, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(realtime, "realtime_worker_listening", lambda: False)  # no worker process in this test
    answer = client_for(people, "viewer").get(output_url(people, manip_run, f"pools=L1:3&sentence={MASKED}"))
    assert answer.status_code == 503 and "No realtime worker is running" in answer.content.decode()


def test_a_slow_worker_is_a_504_with_a_message(people, manip_run, monkeypatch):
    def too_slow(task, arguments):  # stands in for a worker that does not answer in time
        raise realtime.RealtimeTimeout("The realtime worker did not answer within 5 s; try again in a moment.")

    monkeypatch.setattr(realtime, "ask", too_slow)
    answer = client_for(people, "viewer").get(output_url(people, manip_run, f"pools=L1:3&sentence={MASKED}"))
    assert answer.status_code == 504 and "did not answer within 5 s" in answer.content.decode()


def test_neurons_from_the_top_of_a_ranking(people, manip_run):
    step = succeeded_steps(manip_run, StepKind.RANKING)[0]
    ranking = ranking_of(step)
    html = client_for(people, "viewer").get(page_url(people, manip_run, f"ranking={step.pk}&k=3&sentence=a")).content.decode()
    top = [n.label for n in ranking.top(3)]
    assert re.findall(r'<input type="range"[^>]*name="v\.([^"]+)"', html) == top
    assert f'name="pools" value="{",".join(top)}"' in html
    label = next(iter(ranking.per_label))
    html = client_for(people, "viewer").get(page_url(
        people, manip_run, f"ranking={step.pk}&k=2&rlabel={label}&sentence=a")).content.decode()
    expected = [ranking.neuron_ids[i].label for i in np.asarray(ranking.per_label[label])[:2]]
    assert re.findall(r'<input type="range"[^>]*name="v\.([^"]+)"', html) == expected


def test_corpus_picker_searches_the_store_sentences(people, manip_run):
    store = RunView(manip_run).usable_models[0].store()
    html = client_for(people, "viewer").get(page_url(people, manip_run, "cq=sang")).content.decode()
    listed = re.findall(r'<li><a href="[^"]*corpus=(\d+)[^"]*">', html)
    assert listed and all("sang" in " ".join(store.sentence(int(i))) for i in listed)
    html = client_for(people, "viewer").get(page_url(people, manip_run, "cq=zebra")).content.decode()
    assert "No sentence of the corpus contains “zebra”" in html


def test_an_edited_corpus_sentence_becomes_typed_text(people, manip_run):
    state = manipulation_presenter.page_state(RunView(manip_run), _query("corpus=3&sentence=something+else&pools=L1:3"),
                                              ("L1:3",))
    assert state["corpus_sentence"] is None and state["sentence"] == "something else"
    store = RunView(manip_run).usable_models[0].store()
    same = " ".join(store.sentence(3)).replace(" ", "+")
    state = manipulation_presenter.page_state(RunView(manip_run), _query(f"corpus=3&sentence={same}"), ())
    assert state["corpus_sentence"] == 3


def _query(text):
    from django.http import QueryDict

    return QueryDict(text)


@pytest.mark.parametrize("who", ROLES)
def test_permission_matrix_page_and_partial(people, manip_run, who):
    client = client_for(people, who)
    for url in (page_url(people, manip_run, "pools=L1:3&sentence=" + MASKED),
                output_url(people, manip_run, "pools=L1:3&sentence=" + MASKED)):
        answer = client.get(url)
        if who == "anonymous":
            assert answer.status_code == 302 and "/login" in answer["Location"]
        elif who == "stranger":
            assert answer.status_code == 404
        else:
            assert answer.status_code == 200


def test_a_run_without_activations_says_so(people, attached, django_capture_on_commit_callbacks):
    from analysis.runs import services
    from tests.support.runs import request_for

    with django_capture_on_commit_callbacks(execute=False):
        run = services.create_run(people["owner"], people["project"], request_for(attached))
    html = client_for(people, "viewer").get(page_url(people, run)).content.decode()
    assert "no finished activations yet" in html


@pytest.mark.parametrize("arch,task,neuron_set", [("gpt2", "generation", "L"), ("marian", "translation", "enc.L")])
def test_text_models_show_generated_text_side_by_side(people, folders, arch, task, neuron_set, tmp_path,
                                                      django_capture_on_commit_callbacks, monkeypatch):
    from analysis.runs import services
    from projects.services.attachments import attach_upload
    from tests.support.tiny_models import make_tiny_model
    from tests.support.uploads import upload_corpus, upload_model

    monkeypatch.setattr(realtime, "_cache", None)
    owner, project = people["owner"], people["project"]
    model = upload_model(owner, make_tiny_model(arch, tmp_path / arch), name=f"tiny {arch}")
    corpus = upload_corpus(owner)
    attach_upload(owner, project, model)
    attach_upload(owner, project, corpus)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.create_run(owner, project, {"models": [model.pk], "corpus": corpus.pk, "neuron_sets": ["hidden"],
                                                   "rankings": [], "statistics": True})
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error  # an encoder-decoder's statistics cover enc. and dec. sets
    neurons = [f"{neuron_set}2:{u}" for u in range(32)]
    edits = "&".join(f"op.{n}=scale&v.{n}=-40" for n in neurons)
    html = client_for(people, "viewer").get(output_url(
        people, run, f"pools={','.join(neurons)}&{edits}&sentence=the+cat+sat+on+the+mat")).content.decode()
    assert f"Original {task}" in html and f"Manipulated {task}" in html
    assert 'class="manip-changed"' in html and "(changed)" in html
    page = client_for(people, "viewer").get(page_url(people, run, f"pools={neurons[0]}&sentence=a+b")).content.decode()
    assert "ranges are a guess" not in page
    assert range_input(page, neurons[0])["min"] == pytest.approx(
        float(stats_of(run).arrays["min"][stats_of(run).position(neurons[0])]))
