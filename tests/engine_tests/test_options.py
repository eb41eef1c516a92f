"""Options declared beside the engine's functions: the one check of a value (type, range, choices), its messages,
and the two method registries (single-model and cross-model) that declare them."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.engine import crossmodel, methods, model_ablation, probe_ablation
from analysis.engine.features import as_features
from analysis.engine.options import Option, OptionError, clean_fields, clean_options, names_in_words
from analysis.engine.ranking import Ranking

SHARE = Option("share", float, 0.5, "the share kept", minimum=0, above_minimum=True, maximum=1)
PENALTY = Option("penalty", float, None, "a penalty", minimum=0, maximum=1)
COUNT = Option("count", int, 0, "resamples", minimum=2, off=0)
FLAG = Option("flag", bool, False, "a flag", label="Flag it (why)")
KINDS = Option("kinds", str, ("a", "b"), "which kinds", choices=("a", "b"), many=True)
PERCENTS = Option("percents", float, (10, 50), "the shares", minimum=0, above_minimum=True, maximum=100, many=True,
                  example="[10, 50]")


@pytest.mark.parametrize("option, good, bad", [
    (SHARE, [1, 0.25, np.float64(0.5)], [0, -1, 1.01, True, "0.5", None, float("nan"), float("inf")]),
    (PENALTY, [0, 1, 0.5], [-0.1, 2, False]),
    (COUNT, [0, 2, 30, np.int64(5)], [1, -1, 2.5, False, True, 0.0]),
    (FLAG, [True, False], [0, 1, "yes", None]),
    (KINDS, [["a"], ["b", "a"], ("a",)], [[], ["c"], "a", [1]]),
    (PERCENTS, [[10], [0.5, 100]], [[0], [101], [], [True], 50]),
])
def test_a_value_fits_its_declaration_by_type_range_and_choices(option, good, bad):
    assert all(option.accepts(value) for value in good), [v for v in good if not option.accepts(v)]
    assert not any(option.accepts(value) for value in bad), [v for v in bad if option.accepts(v)]


def test_the_range_in_words():
    assert SHARE.range == "above 0 and at most 1" and PENALTY.range == "from 0 to 1"
    assert COUNT.range == "0 (none) or at least 2"
    assert (KINDS.range, PERCENTS.range, FLAG.range) == ("among a, b", "each above 0 and at most 100", "")
    assert SHARE.fits == "a number above 0 and at most 1" and FLAG.fits == "true or false"
    assert COUNT.fits == "0 (none) or a whole number at least 2"
    assert PERCENTS.fits == "a list of numbers, each above 0 and at most 100"


def test_the_two_messages_name_what_fits():
    assert PENALTY.problem() == "penalty is a number from 0 to 1"
    assert FLAG.problem() == "flag is true or false"
    assert PERCENTS.field_problem() == "percents: the shares, each above 0 and at most 100, e.g. [10, 50]."
    assert KINDS.field_problem() == "kinds: choose among a, b."
    assert FLAG.title == "flag it" and Option("l1", float, 0, "", label="λ1 (sparsity)").title == "λ1"


def test_clean_gives_the_normal_form():
    assert SHARE.clean(1) == 1.0 and isinstance(SHARE.clean(1), float)
    assert PERCENTS.clean([50, 10, 50]) == [10, 50]  # sorted, no repeats, numbers as sent
    assert KINDS.clean(("b", "a")) == ["a", "b"]
    with pytest.raises(OptionError, match="share is a number above 0 and at most 1"):
        SHARE.clean(0)


def test_options_are_checked_against_what_their_owner_declares():
    declared = (PENALTY, FLAG)
    assert clean_options({"penalty": 1, "flag": True}, declared, "m") == {"flag": True, "penalty": 1.0}
    with pytest.raises(OptionError) as unknown:
        clean_options({"penalty": 0, "speed": 2}, declared, "m")
    assert unknown.value.unknown == ("speed",)
    assert str(unknown.value) == "m takes no option speed (options it takes: flag, penalty)"
    with pytest.raises(OptionError) as bad:
        clean_options({"penalty": 3, "flag": "yes"}, declared, "m")
    assert str(bad.value) == "flag is true or false; penalty is a number from 0 to 1" and not bad.value.unknown
    with pytest.raises(OptionError, match="m takes no option x \\(options it takes: none\\)"):
        clean_options({"x": 1}, (), "m")
    with pytest.raises(OptionError, match="options is an object"):
        clean_options([1], declared, "m")


def test_fields_left_out_take_their_defaults_and_each_bad_one_is_named():
    cleaned, problems = clean_fields({}, (PERCENTS, KINDS))
    assert cleaned == {"percents": [10, 50], "kinds": ["a", "b"]} and problems == []
    cleaned, problems = clean_fields({"percents": [0], "kinds": ["z"]}, (PERCENTS, KINDS))
    assert problems == [PERCENTS.field_problem(), KINDS.field_problem()]
    assert names_in_words((PERCENTS, COUNT, KINDS)) == "percents, count and kinds"


# ------------------------------------------------------------------------------------------------ the registries


def every_declared_option():
    for registry in (methods.METHODS, crossmodel.METHODS):
        for method in registry.values():
            yield from method.options
    yield from (methods.BOOTSTRAP, methods.CONSENSUS, *probe_ablation.OPTIONS, *model_ablation.OPTIONS)


@pytest.mark.parametrize("option", list(every_declared_option()), ids=lambda o: o.name)
def test_every_declared_option_has_help_and_its_default_fits(option):
    assert option.help and option.type in (bool, int, float, str)
    assert option.default is None or option.accepts(option.default)


@pytest.mark.parametrize("registry", [methods.METHODS, crossmodel.METHODS], ids=["single-model", "cross-model"])
def test_every_method_says_what_its_score_means(registry):
    assert all(m.score and m.description and m.unit and m.name == name for name, m in registry.items())


def test_the_engines_defaults_are_the_declared_ones():
    import inspect

    assert inspect.signature(crossmodel.linreg_rankings).parameters["ridge"].default == crossmodel.RIDGE.default
    assert inspect.signature(crossmodel.svcca_rankings).parameters["variance_kept"].default == \
        crossmodel.VARIANCE_KEPT.default
    assert inspect.signature(probe_ablation.train_and_ablate).parameters["random_seeds"].default == \
        probe_ablation.OPTIONS[1].default
    assert methods.L1.default == methods.lca.DEFAULT_L1


def test_compute_ranking_refuses_the_bootstrap_its_declaration_refuses():
    class NoStore:  # the arguments are checked before the store is read
        label_names = ["A", "B"]

    for bootstrap in (1, -1):
        with pytest.raises(ValueError, match="bootstrap must be 0"):
            methods.compute_ranking(NoStore(), "anova", bootstrap=bootstrap)


def two_models(n=400, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 12)).astype(np.float32)
    b = rng.normal(size=(n, 9)).astype(np.float32)
    b[:, 3] = a[:, 5] + 0.2 * rng.normal(size=n)
    return [as_features(a), as_features(b, layer=1)]


@pytest.mark.parametrize("name", list(crossmodel.METHODS))
def test_every_cross_model_method_gives_one_ranking_per_model_in_their_order(name):
    models = two_models()
    rankings = crossmodel.method_named(name).rank(models, ["A", "B"], None)
    assert isinstance(rankings, list) and all(isinstance(r, Ranking) for r in rankings)
    assert [r.method for r in rankings] == [name, name]
    assert [r.params["model"] for r in rankings] == ["A", "B"]
    assert [len(r.neuron_ids) for r in rankings] == [12, 9]


def test_the_cross_model_registry_passes_declared_options_on():
    linreg = crossmodel.method_named("linreg").rank(two_models(), None, None, ridge=0.5)
    assert [r.params["ridge"] for r in linreg] == [0.5, 0.5]
    svcca = crossmodel.method_named("svcca").rank(two_models(), None, None, variance_kept=0.5)
    assert svcca[0].params["variance_kept"] == 0.5
    with pytest.raises(ValueError, match="unknown cross-model method 'cka'; choose one of maxcorr, mincorr"):
        crossmodel.method_named("cka")
