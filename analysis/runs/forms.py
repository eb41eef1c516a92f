"""The new-analysis form: what a person picks on the page, turned into the same request dict the API takes.

The form only reads the page's inputs (lists, numbers, the rankings added through the dialog); every rule about
what a request may ask lives in ``services.validate_request``. ``NewRunForm.request_dict()`` builds the request,
and ``add_service_errors`` puts the service's ``ValidationError`` messages next to the field they are about.
The rankings dialog's parameter fields (label, help, range, default) are made from the engine's declarations of
each scheme's options (``engine.methods.METHODS``, ``engine.crossmodel.METHODS``).
"""

from __future__ import annotations

import json
import re

from django import forms
from django.core.exceptions import ValidationError

from analysis.engine.crossmodel import METHODS as CROSSMODEL_METHODS
from analysis.engine.methods import BOOTSTRAP, METHODS
from analysis.engine.options import Option

# service error keys → the form field they are shown next to (the rest: the form's own name)
ERROR_FIELDS = {"crossmodel": "rankings", "model_ablation": "model_ablation", "request": None, "aggregation": None}

# the ranking schemes offered in the dialog (label, method); cross-model ones need two or more models
RANKING_CHOICES = [
    ("lca", "Linguistic correlation (LCA: elastic-net probe, λ1 / λ2)"),
    ("lca_dense", "Linguistic correlation, dense (λ1 1e-5)"),
    ("anova", "Univariate: F-test (ANOVA)"),
    ("mutual_info", "Univariate: mutual information"),
    ("probeless", "Probeless (label mean differences)"),
    ("maxcorr", "Cross-model: MaxCorr"),
    ("mincorr", "Cross-model: MinCorr"),
    ("linreg", "Cross-model: linear regression"),
    ("svcca", "Cross-model: SVCCA"),
]
RANKING_NAMES = dict(RANKING_CHOICES)


def _options_of(registry: dict) -> dict[str, tuple[Option, str]]:
    """Each option a dialog scheme of ``registry`` takes: name → (its declaration, the schemes taking it)."""
    found: dict[str, tuple[Option, str]] = {}
    for name, _ in RANKING_CHOICES:
        for option in registry[name].options if name in registry else ():
            declared, takers = found.get(option.name, (option, ""))
            found[option.name] = (declared, f"{takers} {name}".strip())
    return found


def _schemes_in(registry: dict) -> str:
    return " ".join(name for name, _ in RANKING_CHOICES if name in registry)


def parse_layers(text: str) -> list[int] | None:
    """``"0, 2-4"`` → ``[0, 2, 3, 4]``; empty → None (every layer)."""
    text = text.strip()
    if not text:
        return None
    layers = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValidationError("Write layer numbers and ranges separated by commas, e.g. 0, 2-4; leave it empty "
                                  "for every layer.")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise ValidationError(f"The range {first}-{last} runs backwards; write {last}-{first}.")
        layers += range(first, last + 1)
    return sorted(set(layers))


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)


def describe_ranking(entry: dict) -> str:
    """One line for a ranking added through the dialog (shown in the form's list and read by screen readers);
    any entry, even one the service refuses, is described (the form is redrawn with it and the message)."""
    method = entry.get("method")
    parts = [RANKING_NAMES.get(method, str(method))]
    options = entry.get("options") if isinstance(entry.get("options"), dict) else {}
    parts += _describe_values(options, _options_of(METHODS))  # under a ranking item's "options"
    if entry.get("bootstrap"):
        parts.append(f"confidence: {_number(entry['bootstrap'])} resamples")
    elif "bootstrap" in entry:
        parts.append("no confidence")
    parts += _describe_values(entry, _options_of(CROSSMODEL_METHODS))  # beside a cross-model item's "method"
    return " · ".join(parts)


def _describe_values(values: dict, declared: dict) -> list[str]:
    """ "λ1 0.01", "control task" (a flag only when set): each declared option present in ``values``."""
    parts = []
    for name, (option, _) in declared.items():
        if name in values and (option.type is not bool or values[name]):
            parts.append(option.title if option.type is bool else f"{option.title} {_number(values[name])}")
    return parts


class RankingsField(forms.Field):
    """Each ranking the dialog added is one hidden input holding its JSON (the API's ranking item)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        entries = []
        for item in value or []:
            try:
                entry = json.loads(item)
            except (TypeError, ValueError):
                raise ValidationError("A ranking could not be read; remove it and add it again.")
            if not isinstance(entry, dict):
                raise ValidationError("A ranking could not be read; remove it and add it again.")
            entries.append(entry)
        return entries

    def prepare_value(self, value):
        return [v if isinstance(v, str) else json.dumps(v) for v in value or []]


class NewRunForm(forms.Form):
    models = forms.ModelMultipleChoiceField(queryset=None, required=False, widget=forms.CheckboxSelectMultiple,
                                            label="Models")
    corpus = forms.ModelChoiceField(queryset=None, required=False, empty_label="Choose a corpus", label="Corpus")
    neuron_sets = forms.MultipleChoiceField(
        choices=[("hidden", "Hidden states (each layer's output)"), ("mlp", "MLP (feed-forward) activations")],
        required=False, initial=["hidden"], widget=forms.CheckboxSelectMultiple, label="Neuron sets")
    layers = forms.CharField(required=False, label="Layers",
                             help_text="e.g. 0, 2-4 (0 is the embeddings); empty: every layer.")
    statistics = forms.BooleanField(required=False, initial=True, label="Neuron statistics",
                                    help_text="Per-neuron histograms, per-label means, top words and contexts.")
    probe_ablation = forms.BooleanField(required=False, label="Probe ablation",
                                        help_text="Retrain the probe keeping the top / bottom / random neurons "
                                                  "of the LCA ranking.")
    model_ablation = forms.ModelChoiceField(queryset=None, required=False, empty_label="No model-level ablation",
                                            label="Model-level ablation on a test set",
                                            help_text="Remove neurons along each ranking and measure the model's "
                                                      "own task on this test set.")
    rankings = RankingsField(required=False, label="Rankings")
    seed = forms.IntegerField(initial=0, label="Seed", help_text="Splits, resamples and probes follow it.")

    def __init__(self, project, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["models"].queryset = project.model_uploads.order_by("pk")
        self.fields["models"].label_from_instance = lambda m: (
            f"{m.name} ({m.model_type}, {m.n_layers or '?'} layers × {m.hidden_size or '?'})")
        self.fields["corpus"].queryset = project.corpus_uploads.order_by("pk")
        self.fields["corpus"].label_from_instance = lambda c: (
            f"{c.name} ({c.n_words:,} words; labels: {c.label_column or 'none'}, {c.n_labels} values)")
        self.fields["model_ablation"].queryset = project.test_set_uploads.order_by("pk")

    def request_dict(self) -> dict:
        """The API's request for what the form holds (call after ``is_valid()``)."""
        data = self.cleaned_data
        entries = data.get("rankings") or []
        rankings = [e for e in entries if e.get("method") not in CROSSMODEL_METHODS]
        crossmodel = [e for e in entries if e.get("method") in CROSSMODEL_METHODS]
        test_set = data.get("model_ablation")
        return {
            "models": [m.pk for m in data.get("models") or []],
            "corpus": data["corpus"].pk if data.get("corpus") else None,
            "neuron_sets": list(data.get("neuron_sets") or []),
            "layers": data.get("layers"),
            "rankings": rankings,
            "crossmodel": crossmodel,
            "statistics": bool(data.get("statistics")),
            "probe_ablation": bool(data.get("probe_ablation")),
            "model_ablation": {"test_set": test_set.pk} if test_set else False,
            "seed": data.get("seed") or 0,
        }

    def clean_layers(self):
        return parse_layers(self.cleaned_data.get("layers") or "")

    def add_service_errors(self, error: ValidationError) -> None:
        """The service's messages, each next to the field it names (others above the form)."""
        for key, messages in error.message_dict.items():
            field = ERROR_FIELDS.get(key, key)
            self.add_error(field if field in self.fields else None, messages)

    def ranking_entries(self) -> list[tuple[str, str]]:
        """(JSON, description) of each ranking the form holds, to redraw the list after a failed submit."""
        value = self["rankings"].value() or []
        entries = []
        for item in value:
            try:
                entry = json.loads(item) if isinstance(item, str) else item
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append((json.dumps(entry), describe_ranking(entry)))
        return entries


def method_defaults() -> dict:
    """What the dialog pre-fills per method: the engine's default number of bootstrap resamples."""
    return {name: {"bootstrap": method.bootstrap} for name, method in METHODS.items()}


def _dialog_field(option: Option, placeholder: str = "") -> forms.Field:
    """The dialog's input for one declared option: its label, its help with the range and the default, and the
    range as the input's min / max (the service checks the range with the whole request)."""
    if option.type is bool:
        return forms.BooleanField(required=False, label=option.label, help_text=f"{option.help[:1].upper()}"
                                  f"{option.help[1:]}.")
    default = f"{option.default:g}" if isinstance(option.default, (int, float)) else ""
    attrs = {"step": "1" if option.type is int else "any"}
    if placeholder or default:
        attrs["placeholder"] = placeholder or default
    attrs.update({key: f"{value:g}" for key, value in (("min", option.minimum), ("max", option.maximum))
                  if value is not None})
    facts = "; ".join(fact for fact in (option.bounds, default and f"empty: {default}") if fact)
    help_text = f"{option.help[:1].upper()}{option.help[1:]}" + (f" ({facts})." if facts else ".")
    field = forms.IntegerField if option.type is int else forms.FloatField
    return field(required=False, label=option.label, help_text=help_text, widget=forms.NumberInput(attrs))


class RankingForm(forms.Form):
    """The rankings dialog: one scheme and its parameters, read into the API's ranking item (a cross-model one
    into a ``crossmodel`` item). Ranges are checked by ``services.validate_request`` with the whole request."""

    method = forms.ChoiceField(choices=RANKING_CHOICES, label="Scheme")
    confidence = forms.BooleanField(required=False, initial=True, label="Confidence (bootstrap)")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "id_dialog_%s")
        super().__init__(*args, **kwargs)
        # in the dialog's order: the single-model schemes' options, their confidence, the cross-model options
        method_options, crossmodel_options = _options_of(METHODS), _options_of(CROSSMODEL_METHODS)
        self.takers = {name: takers for name, (_, takers) in {**method_options, **crossmodel_options}.items()}
        self.takers.update(confidence=_schemes_in(METHODS), bootstrap=_schemes_in(METHODS))
        fields = {"method": self.fields["method"]}
        fields.update({name: _dialog_field(option) for name, (option, _) in method_options.items()})
        fields.update(confidence=self.fields["confidence"],
                      bootstrap=_dialog_field(BOOTSTRAP, placeholder="the method's default"))
        fields.update({name: _dialog_field(option) for name, (option, _) in crossmodel_options.items()})
        self.fields = fields
        self.crossmodel_schemes = _schemes_in(CROSSMODEL_METHODS)

    def parameter_fields(self) -> list[tuple[forms.BoundField, str]]:
        """(field, the schemes that take it, space-separated) for each input after the scheme."""
        return [(self[name], self.takers[name]) for name in self.fields if name != "method"]

    def entry(self) -> dict:
        data = self.cleaned_data
        method = data["method"]
        if method in CROSSMODEL_METHODS:
            return {"method": method, **self._values(CROSSMODEL_METHODS[method].options)}
        bootstrap = 0
        if data["confidence"]:
            bootstrap = data["bootstrap"] if data["bootstrap"] is not None else (METHODS[method].bootstrap or 20)
        return {"method": method, "bootstrap": bootstrap, "options": self._values(METHODS[method].options)}

    def _values(self, declared) -> dict:
        """The values given for the ``declared`` options (a flag only when it is set)."""
        values = {option.name: self.cleaned_data.get(option.name) for option in declared}
        return {name: value for name, value in values.items() if value is not None and value is not False}
