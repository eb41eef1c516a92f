"""REST serializers for runs, their steps, log lines and results.

They describe the shape of requests and answers; what a run may ask for is decided by
``analysis.runs.services.validate_request``, whose messages reach the client unchanged. The schema of what each
ranking method, cross-model method and ablation may set is made from the engine's declarations of their
options (:class:`analysis.engine.options.Option`), the same ones the service checks against.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.runs import selectors
from analysis.runs.services import MAX_ITEMS, SEED, too_many_message
from analysis.engine.crossmodel import METHODS as CROSSMODEL_METHODS
from analysis.engine.methods import BOOTSTRAP, CONSENSUS, CONSENSUS_MIN_BOOTSTRAP, METHODS
from analysis.engine.model_ablation import OPTIONS as MODEL_ABLATION_OPTIONS
from analysis.engine.options import Option
from analysis.engine.probe_ablation import OPTIONS as PROBE_ABLATION_OPTIONS
from analysis.models import LogLine, Run, Step

_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _sentence(text: str) -> str:
    """ "the share kept" → "The share kept." (a text that starts with a name, e.g. zero_out, is left as it is)."""
    first = text.split(" ", 1)[0]
    return f"{text if '_' in first else text[:1].upper() + text[1:]}."


def option_schema(option: Option, description: str = "") -> dict:
    """The OpenAPI schema of one declared option: its type, range or choices, default and help."""
    value: dict = {"type": _TYPES[option.type]}
    if option.choices:
        value["enum"] = list(option.choices)
    low = option.minimum if option.off is None or option.minimum is None else min(option.off, option.minimum)
    if low is not None:
        value.update(minimum=low, **({"exclusiveMinimum": True} if option.above_minimum else {}))
    if option.maximum is not None:
        value["maximum"] = option.maximum
    schema = {"type": "array", "items": value, "minItems": 1} if option.many else value
    if option.many and option.max_count:
        schema["maxItems"] = option.max_count
    if option.default is not None:
        schema["default"] = list(option.default) if option.many else option.default
    fits = f" {_sentence(option.range)}" if option.range and not option.choices else ""
    return {**schema, "description": description or f"{_sentence(option.help)}{fits}"}


def _options_object(registries, description: str) -> dict:
    """An object of the options the methods of ``registries`` take, each saying which methods take it."""
    takers: dict[str, tuple[Option, list[str]]] = {}
    for registry in registries:
        for method in registry.values():
            for option in method.options:
                takers.setdefault(option.name, (option, []))[1].append(method.name)
    properties = {name: option_schema(option, f"{', '.join(names)}: {option.help}."
                                      + (f" {_sentence(option.range)}" if option.range else ""))
                  for name, (option, names) in sorted(takers.items())}
    return {"type": "object", "properties": properties, "additionalProperties": False, "description": description}


def _methods_text(registry) -> str:
    """One line per method: what it ranks by, and what its score means."""
    return "\n".join(f"- `{m.name}`: {m.description}. Score: {m.score}." for m in registry.values())


def ranking_item_schema() -> dict:
    """A ``rankings`` item: a method name, or an object with the method, its resamples, consensus and options."""
    defaults = ", ".join(f"{m.name} {m.bootstrap}" for m in METHODS.values())
    return {"oneOf": [
        {"type": "string", "enum": list(METHODS), "description": "A method, with its defaults."},
        {"type": "object", "required": ["method"], "properties": {
            "method": {"type": "string", "enum": list(METHODS), "description": _methods_text(METHODS)},
            "bootstrap": option_schema(BOOTSTRAP, _sentence(
                f"{BOOTSTRAP.help}: {BOOTSTRAP.range}; default: the method's own ({defaults})")),
            "consensus": option_schema(CONSENSUS, _sentence(
                f"{CONSENSUS.help} instead of ranking on the training sentences once; needs bootstrap "
                f"{CONSENSUS_MIN_BOOTSTRAP} or more")),
            "options": _options_object([METHODS], "The method's options; a method takes only its own."),
        }},
    ]}


def crossmodel_item_schema() -> dict:
    """A ``crossmodel`` item: a method name, or an object with the method and its options beside it."""
    options = _options_object([CROSSMODEL_METHODS], "")
    return {"oneOf": [
        {"type": "string", "enum": list(CROSSMODEL_METHODS), "description": "A method, with its defaults."},
        {"type": "object", "required": ["method"], "additionalProperties": False, "properties": {
            "method": {"type": "string", "enum": list(CROSSMODEL_METHODS),
                       "description": _methods_text(CROSSMODEL_METHODS)},
            **options["properties"]}},
    ]}


def _fields_object(declared, **more) -> dict:
    return {"type": "object", "additionalProperties": False,
            "properties": {**more, **{option.name: option_schema(option) for option in declared}}}


def _object_text(declared) -> str:
    """ '"percents": [...], "random_seeds": n, "modes": [...]' """
    return ", ".join(f'"{o.name}": {"[...]" if o.many and not o.choices else "n"}' if not o.choices
                     else f'"{o.name}": [{", ".join(o.choices)}]' for o in declared)


@extend_schema_field(ranking_item_schema())
class RankingItemField(serializers.JSONField):
    """One item of ``rankings`` (checked by the service)."""


@extend_schema_field(crossmodel_item_schema())
class CrossModelItemField(serializers.JSONField):
    """One item of ``crossmodel`` (checked by the service)."""


@extend_schema_field({"oneOf": [{"type": "boolean"}, _fields_object(PROBE_ABLATION_OPTIONS)]})
class ProbeAblationField(serializers.JSONField):
    """``probe_ablation`` (checked by the service)."""


@extend_schema_field({"oneOf": [{"type": "boolean", "enum": [False]}, {
    **_fields_object(MODEL_ABLATION_OPTIONS, test_set={"type": "integer", "description": "A test set of the project."}),
    "required": ["test_set"]}]})
class ModelAblationField(serializers.JSONField):
    """``model_ablation`` (checked by the service)."""


def _crossmodel_help() -> str:
    methods = " | ".join(f'"{name}"' for name in CROSSMODEL_METHODS)
    takes = [f'{m.name}{" takes" if i == 0 else ""} {", ".join(chr(34) + o.name + chr(34) for o in m.options)}'
             for i, m in enumerate(m for m in CROSSMODEL_METHODS.values() if m.options)]
    return (f"With two or more models: each {{\"method\": {methods}}} ({', '.join(takes)}), one ranking per model "
            "over every model.")


def _at_most(field: str) -> dict:
    """A list field's bound (``services.MAX_ITEMS``): DRF refuses longer lists with the service's message."""
    return {"max_length": MAX_ITEMS[field], "error_messages": {"max_length": too_many_message(field)}}


class RunRequestSerializer(serializers.Serializer):
    """What to compute. Only the fields sent are passed on; the service fills in its defaults."""

    models = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the project's models.",
                                   **_at_most("models"))
    corpus = serializers.IntegerField(help_text="Id of one of the project's corpora.")
    neuron_sets = serializers.ListField(child=serializers.CharField(max_length=20), required=False,
                                        help_text="Among hidden and mlp (default: hidden).")
    layers = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True,
                                   help_text="Layer numbers; leave out (or null) for every layer.")
    aggregation = serializers.CharField(max_length=20, required=False,
                                        help_text="How a word's subword activations combine (default: last).")
    rankings = serializers.ListField(
        child=RankingItemField(), required=False, **_at_most("rankings"),
        help_text="Each a method name or {\"method\": ..., \"bootstrap\": resamples, \"options\": {...}}.")
    statistics = serializers.BooleanField(required=False, help_text="Per-neuron statistics (default: true).")
    probe_ablation = ProbeAblationField(
        required=False, help_text=f"false, true, or {{{_object_text(PROBE_ABLATION_OPTIONS)}}}.")
    crossmodel = serializers.ListField(child=CrossModelItemField(), required=False, help_text=_crossmodel_help(),
                                       **_at_most("crossmodel"))
    model_ablation = ModelAblationField(
        required=False, help_text=f"false, or {{\"test_set\": id, {_object_text(MODEL_ABLATION_OPTIONS)}}}: the "
                                  "model's own task as neurons are removed along each ranking (an encoder without a "
                                  "masked-LM head: a probe's accuracy on the corpus's test sentences, read through "
                                  "the ablated model).")
    seed = serializers.IntegerField(
        required=False, min_value=SEED.minimum, max_value=SEED.maximum,
        error_messages={key: f"{SEED.problem()}." for key in ("min_value", "max_value")},
        help_text=f"Seed for splits, probes and resampling: {SEED.range}.")


class StepSerializer(serializers.ModelSerializer):
    needs = serializers.PrimaryKeyRelatedField(many=True, read_only=True, help_text="Steps this one waits for.")
    queue_position = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="While queued: 1 when it is next on its queue, N when N-1 "
        "queued steps (of any user) are ahead of it; null otherwise.")

    class Meta:
        model = Step
        fields = ["id", "kind", "title", "state", "done", "total", "unit", "reused", "attempts", "queue",
                  "queue_position", "needs", "error", "queued_at", "started_at", "finished_at"]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    waiting_reason = serializers.SerializerMethodField(
        help_text="While the run waits on its creator's concurrent-run quota, the message saying so; else empty.")
    steps = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "project", "created_by", "request", "state", "admitted", "waiting_reason", "error",
                  "created_at", "started_at", "finished_at", "log_seq", "steps"]
        read_only_fields = fields


    def get_waiting_reason(self, run) -> str:
        return selectors.waiting_reason(run)

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, run):
        return StepSerializer(selectors.steps_of(run), many=True).data


class RunSummarySerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Run
        fields = ["id", "project", "created_by", "state", "admitted", "error", "created_at", "started_at",
                  "finished_at"]
        read_only_fields = fields


class LogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = LogLine
        fields = ["seq", "step", "text", "created_at"]
        read_only_fields = fields


class LogPageSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True)
    last_seq = serializers.IntegerField(help_text="Pass this as `after` to get the next lines.")
    more = serializers.BooleanField(help_text="True when more lines than `limit` were waiting.")


class ResultFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Path inside the result, e.g. `stats/means.npy`.")
    bytes = serializers.IntegerField()
    url = serializers.CharField(help_text="Download address.")


class StepResultSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    key = serializers.CharField(help_text="Content key: the same question gives the same key.")
    bytes = serializers.IntegerField()
    meta = serializers.JSONField()
    data = serializers.JSONField(allow_null=True,
                                 help_text="Rankings (with confidence when resampled) and curves as JSON; null "
                                 "for results that are arrays (download their files).")
    files = ResultFileSerializer(many=True)
