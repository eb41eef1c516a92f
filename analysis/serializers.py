"""REST serializers for runs, their steps, log lines and results.

They describe the shape of requests and answers; what a run may ask for is decided by
``analysis.services.validate_request``, whose messages reach the client unchanged.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import selectors
from .models import LogLine, Run, Step


class RunRequestSerializer(serializers.Serializer):
    """What to compute. Only the fields sent are passed on; the service fills in its defaults."""

    models = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the project's models.")
    corpus = serializers.IntegerField(help_text="Id of one of the project's corpora.")
    neuron_sets = serializers.ListField(child=serializers.CharField(max_length=20), required=False,
                                        help_text="Among hidden and mlp (default: hidden).")
    layers = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True,
                                   help_text="Layer numbers; leave out (or null) for every layer.")
    aggregation = serializers.CharField(max_length=20, required=False,
                                        help_text="How a word's subword activations combine (default: last).")
    rankings = serializers.ListField(
        child=serializers.JSONField(), required=False,
        help_text="Each a method name or {\"method\": ..., \"bootstrap\": resamples, \"options\": {...}}.")
    statistics = serializers.BooleanField(required=False, help_text="Per-neuron statistics (default: true).")
    probe_ablation = serializers.JSONField(
        required=False, help_text="false, true, or {\"percents\": [...], \"random_seeds\": n, \"modes\": [...]}.")
    crossmodel = serializers.ListField(
        child=serializers.JSONField(), required=False,
        help_text="With two or more models: each {\"method\": \"maxcorr\" | \"mincorr\" | \"linreg\" | \"svcca\"} "
                  "(linreg takes \"ridge\", svcca \"variance_kept\"), one ranking per model over every model.")
    model_ablation = serializers.JSONField(
        required=False, help_text="false, or {\"test_set\": id, \"percents\": [...], \"random_seeds\": n, "
                                  "\"modes\": [top, bottom, random]}: the model's own task as neurons are removed "
                                  "along each ranking (an encoder without a masked-LM head: a probe's accuracy on "
                                  "the corpus's test sentences, read through the ablated model).")
    seed = serializers.IntegerField(required=False, help_text="Seed for splits, probes and resampling.")


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


class ManipulationRecipeSerializer(serializers.ModelSerializer):
    """A saved manipulation. ``recipe`` is checked by ``analysis.manipulation_view.clean_recipe`` (the same check
    as the Manipulation view's save form); its messages come back under ``recipe``."""

    created_by = serializers.CharField(source="created_by.username", read_only=True)
    name = serializers.CharField(allow_blank=True, help_text="At most 120 characters.")
    run = serializers.IntegerField(source="run_id", required=False, allow_null=True,
                                   help_text="A run of the project (for a corpus sentence or label positions).")
    recipe = serializers.JSONField(help_text="{\"model\": id, \"sentence\": text, \"corpus_sentence\": index or "
                                   "null, \"edits\": [{\"neuron\": \"L3:117\", \"operation\": \"clamp\" | \"scale\" "
                                   "| \"shift\", \"value\": number}], \"positions\": {\"mode\": \"all\"} | "
                                   "{\"mode\": \"label\", \"label\": \"VERB\"} | {\"mode\": \"words\", \"words\": "
                                   "[0, 2]}, \"mask_words\": [...]}")

    class Meta:
        from .models import ManipulationRecipe

        model = ManipulationRecipe
        fields = ["id", "name", "run", "recipe", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]

    def validate_name(self, value):
        from .manipulation_view import RecipeError, clean_name

        try:
            return clean_name(value)
        except RecipeError as error:
            raise serializers.ValidationError(error.message) from None

    def validate(self, data):
        from .manipulation_view import RecipeError, clean_recipe

        project = self.context["project"]
        run = None
        if data.get("run_id") is not None:
            run = project.runs.filter(pk=data["run_id"]).first()
            if run is None:
                raise serializers.ValidationError({"run": ["Not a run of this project."]})
        try:
            recipe = clean_recipe(project, data["recipe"], run)
        except RecipeError as error:
            where = {error.field: [error.message]} if error.field != "recipe" else [error.message]
            raise serializers.ValidationError({"recipe": where}) from None
        return {"name": data["name"], "run": run, "recipe": recipe}
