"""REST endpoints of the read side (under /api/v1/): a run's results and their files, downloads in each format,
and the project's saved manipulation recipes.

The run endpoints are the pipeline's (``analysis.runs.api.RunViewSet``); the one registered adds ``results``,
read through the run's ``RunView``. Thin: runs are found through ``analysis.runs.selectors``, recipes written by
``analysis.workspace.recipes``.
"""

from __future__ import annotations

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from analysis.models import ManipulationRecipe, Run
from analysis.runs import api as runs_api, selectors
from analysis.runs.api import FORBIDDEN, NOT_FOUND, _fake
from analysis.runs.serializers import StepResultSerializer
from analysis.workspace import RunView, recipes
from analysis.workspace.downloads.presenter import download_response
from analysis.workspace.results import result_file, results_of
from projects.selectors import project_for


class ManipulationRecipeSerializer(serializers.ModelSerializer):
    """A saved manipulation. ``recipe`` is checked by the same check as the Manipulation view's save form; its
    messages come back under ``recipe``."""

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
        model = ManipulationRecipe
        fields = ["id", "name", "run", "recipe", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]

    def validate_name(self, value):
        try:
            return recipes.clean_name(value)
        except recipes.RecipeError as error:
            raise serializers.ValidationError(error.message) from None

    def validate(self, data):
        project = self.context["project"]
        run = None
        if data.get("run_id") is not None:
            run = project.runs.filter(pk=data["run_id"]).first()
            if run is None:
                raise serializers.ValidationError({"run": ["Not a run of this project."]})
        try:
            recipe = recipes.clean_recipe(project, data["recipe"], run)
        except recipes.RecipeError as error:
            where = {error.field: [error.message]} if error.field != "recipe" else [error.message]
            raise serializers.ValidationError({"recipe": where}) from None
        return {"name": data["name"], "run": run, "recipe": recipe}


class RunViewSet(runs_api.RunViewSet):
    # The pipeline's run endpoints and the run's results (a comment, not a docstring: the schema would show it).

    @extend_schema(summary="Results of the run's finished steps: rankings (with confidence) and curves as JSON, "
                   "statistics and activations as files to download",
                   responses={200: StepResultSerializer(many=True), 404: NOT_FOUND})
    @action(detail=True, methods=["get"], pagination_class=None)
    def results(self, request, pk=None):
        run = self.get_object()
        found = [{**vars(result), "files": [
            {"name": name, "bytes": path.stat().st_size,
             "url": reverse("api-run-result-file", args=[run.pk, result.step, name])}
            for name, path in result.files.items()]} for result in results_of(run)]
        return Response(StepResultSerializer(found, many=True).data)


@extend_schema(summary="Download one file of a run's result", parameters=[
    OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="A name from the result's "
                     "`files` listing.")],
    responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: NOT_FOUND})
class RunResultFileViewSet(viewsets.GenericViewSet):
    def get_queryset(self):  # for the schema generator only: the action reads through selectors
        return Run.objects.none()

    def retrieve(self, request, run_pk=None, step_pk=None, name=None):
        run = selectors.run_for(request.user, run_pk)
        path = result_file(run, step_pk, name)
        return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


@extend_schema(summary="Download a result of the run in one format (members)", description=(
    "Rankings: `ranking.csv` (neuron, rank, score, rank interval, rank per label) or `ranking.json`; statistics: "
    "`statistics.csv`, `stats.npz`, `stats.json`; curves: `curve.csv`, `curve.json`; activations (an "
    "extraction step, `set` = neuron set, default the first): `activations.hdf5` (NeuroX HDF5, built once on "
    "first request), `activations.jsonl`, `activations.json` (NeuroX JSON). CSV and JSON lines are streamed."),
    parameters=[OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The format."),
                OpenApiParameter("set", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False,
                                 description="Activations: the neuron set (e.g. hidden, mlp).")],
    responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, 404: NOT_FOUND})
class RunDownloadViewSet(viewsets.GenericViewSet):
    def get_queryset(self):  # for the schema generator only: the action reads through selectors
        return Run.objects.none()

    def retrieve(self, request, run_pk=None, step_pk=None, name=None):
        view = RunView.of(selectors.run_for(request.user, run_pk))
        return download_response(view, step_pk, name, request.query_params.get("set"))


# ------------------------------------------------------------------------------------------------ manipulation recipes


@extend_schema_view(
    list=extend_schema(summary="The project's saved manipulation recipes (any member)",
                       responses={200: ManipulationRecipeSerializer(many=True), 404: NOT_FOUND}),
    retrieve=extend_schema(summary="One saved manipulation recipe (any member)",
                           responses={200: ManipulationRecipeSerializer, 404: NOT_FOUND}),
    create=extend_schema(summary="Save a manipulation recipe (owners and editors)",
                         request=ManipulationRecipeSerializer,
                         responses={201: ManipulationRecipeSerializer,
                                    400: OpenApiResponse(description="What to change, by field (recipe "
                                                         "errors under `recipe`); nothing was saved."),
                                    403: FORBIDDEN, 404: NOT_FOUND}),
    destroy=extend_schema(summary="Delete a manipulation recipe (owners and editors)",
                          responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND}),
)
class ManipulationRecipeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                                mixins.DestroyModelMixin, viewsets.GenericViewSet):
    serializer_class = ManipulationRecipeSerializer
    lookup_value_converter = "int"

    def _project(self, write=False):
        return project_for(self.request.user, self.kwargs["project_pk"], write=write)

    def get_queryset(self):
        if _fake(self):
            return ManipulationRecipe.objects.none()
        return self._project().manipulation_recipes.select_related("created_by")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not _fake(self) and self.action == "create":
            context["project"] = self._project(write=True)
        return context

    def perform_create(self, serializer):
        """The serializer checked the request; the recipe's write checks it again as it stores it (the one
        rule, ``analysis.workspace.recipes``: a clean recipe passes unchanged)."""
        data = serializer.validated_data
        try:
            serializer.instance = recipes.create_recipe(self.request.user, serializer.context["project"],
                                                         name=data["name"], recipe=data["recipe"], run=data["run"])
        except recipes.RecipeError as error:
            raise exceptions.ValidationError({"recipe": [error.message]}) from None

    def perform_destroy(self, instance):
        self._project(write=True)
        recipes.delete_recipe(self.request.user, instance)
