"""Provenance: what each result was computed from (hashes, parameters, seed, library versions, "not recorded"
for old results) and engine command lines that the CLI's own parser accepts and that reproduce the result."""

from __future__ import annotations

import json
import shutil
from importlib import metadata

import numpy as np
import pytest

from analysis.engine.cli import build_parser, main
from analysis.models import Result, StepKind
from analysis.steps.provenance import provenance_of
from analysis.steps.versions import engine_version
from analysis.steps.commands import ENGINE
from analysis.workspace import ranking_of
from projects.services.storage import local_folder
from tests.support.clients import client_for
from tests.support.urls import run_page_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_results_cache")]

COMMAND_OF_KIND = {StepKind.EXTRACT: "extract", StepKind.RANKING: "rank", StepKind.STATISTICS: "stats",
                   StepKind.PROBE_ABLATION: "probe-ablate", StepKind.CROSSMODEL: "crossmodel"}


def parse(command):
    assert command[:3] == ENGINE
    return build_parser().parse_args(command[3:])


@pytest.mark.parametrize("run_fixture", ["finished_run", "two_model_run"])
def test_every_results_command_line_is_valid_for_the_engines_parser(request, run_fixture):
    run = request.getfixturevalue(run_fixture)
    for step in run.steps.all():
        prov = provenance_of(step)
        assert prov.commands, step.title
        parsed = [parse(command) for command in prov.commands]
        assert parsed[-1].command == COMMAND_OF_KIND[step.kind]
        assert len(prov.command_lines) == len(prov.commands)
        assert prov.command_lines[-1].startswith("python -m analysis.engine ")


def test_the_rank_command_carries_the_steps_parameters(finished_run, attached):
    step = finished_run.steps.get(kind=StepKind.RANKING, params__method="anova")
    prov = provenance_of(step)
    args = parse(prov.commands[0])
    extraction = finished_run.steps.get(kind=StepKind.EXTRACT).params["extraction"]
    assert (args.method, args.bootstrap, args.seed) == ("anova", 2, step.params["seed"])
    assert args.rank_sets == "hidden" and args.layers is None
    assert args.sets == ",".join(extraction["neuron_sets"]) and args.aggregation == extraction["aggregation"]
    assert args.label_column == "upos" and args.max_sentence_words == 0
    assert args.model == "./tiny-bert" and args.corpus == "./toy.conllu"
    assert prov.models[0]["sha256"] == attached["model"].sha256
    assert prov.corpus["sha256"] == attached["corpus"].sha256
    assert prov.seed == step.params["seed"] and prov.parameters["method"] == "anova"


def test_the_printed_command_reproduces_the_ranking(finished_run, attached, tiny_bert, tmp_path, monkeypatch):
    """Run the command line the page prints, in a folder laid out as the page says: the same ranking."""
    step = finished_run.steps.get(kind=StepKind.RANKING, params__method="probeless")
    prov = provenance_of(step)
    shutil.copytree(tiny_bert, tmp_path / prov.models[0]["folder"])
    corpus = attached["corpus"]
    shutil.copy(local_folder(corpus) / corpus.metadata["word_file"], tmp_path / prov.corpus["file"])
    monkeypatch.chdir(tmp_path)
    assert main(prov.commands[0][3:]) == 0
    again = json.loads((tmp_path / "ranking.json").read_text())
    platform = ranking_of(step).to_dict()
    assert again["neurons"] == platform["neurons"] and again["order"] == platform["order"]
    np.testing.assert_allclose(again["scores"], platform["scores"])


def test_library_versions_are_recorded_at_compute_time(finished_run):
    for step in finished_run.steps.all():
        versions = Result.objects.get(key=step.result_key).meta["versions"]
        assert versions["engine"] == engine_version()
        for name in ("torch", "transformers", "numpy", "scikit-learn"):
            assert versions[name] == metadata.version(name)


def test_the_downloads_page_shows_what_each_result_came_from(people, finished_run, attached):
    html = client_for(people, "viewer").get(run_page_url(finished_run, "downloads/")).content.decode()
    assert f"sha256 {attached['model'].sha256}" in html and f"sha256 {attached['corpus'].sha256}" in html
    assert f"torch <code>{metadata.version('torch')}</code>" in html
    assert "python -m analysis.engine rank ./tiny-bert ./toy.conllu" in html
    assert "not recorded" not in html


def test_a_result_without_versions_says_not_recorded(people, finished_run):
    step = finished_run.steps.get(kind=StepKind.STATISTICS)
    result = Result.objects.get(key=step.result_key)
    result.meta = {k: v for k, v in result.meta.items() if k != "versions"}
    result.save()
    assert provenance_of(step).versions is None
    html = client_for(people, "owner").get(run_page_url(finished_run, "neurons/L1:3/")).content.decode()
    assert "not recorded (computed before versions were kept)" in html
    assert "python -m analysis.engine stats var/engine/stores/" in html and "L1:3</code>" in html


def test_other_views_include_the_partial_with_a_step(finished_run, attached):
    from django.template import Context, Template

    step = finished_run.steps.get(kind=StepKind.PROBE_ABLATION)
    html = Template('{% include "analysis/workspace/_provenance.html" with step=step %}').render(
        Context({"step": step}))
    assert "How this was computed" in html and step.title in html
    assert "python -m analysis.engine probe-ablate ./tiny-bert ./toy.conllu" in html
    assert f"sha256 {attached['corpus'].sha256}" in html
    assert Template('{% include "analysis/workspace/_provenance.html" with step=None %}').render(
        Context({})).strip() == ""


def test_a_model_ablation_shows_its_ranking_then_the_ablate_command(finished_run, attached):
    from analysis.models import Step

    ranking = finished_run.steps.get(kind=StepKind.RANKING, params__method="anova")
    step = Step.objects.create(run=finished_run, kind=StepKind.MODEL_ABLATION, title="Model ablation (not run)",
                               result_key="0" * 64, queue="gpu", params={
                                   "model": attached["model"].pk, "ranking_key": ranking.result_key,
                                   "test_set": None, "test_set_sha256": "", "percents": [10, 50, 100],
                                   "modes": ["top", "random"], "random_seeds": 2, "seed": 0})
    prov = provenance_of(step)
    rank, ablate = (parse(command) for command in prov.commands)
    assert (rank.command, rank.method, rank.json) == ("rank", "anova", "ranking.json")
    assert (ablate.command, ablate.ranking, ablate.model) == ("ablate", "ranking.json", "./tiny-bert")
    assert ablate.references is None
    assert prov.models[0]["sha256"] == attached["model"].sha256
    assert prov.parameters["percents"] == [10, 50, 100] and prov.versions is None
    assert any("random order" in note for note in prov.notes)
