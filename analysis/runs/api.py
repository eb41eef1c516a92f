"""REST endpoints of the pipeline (under /api/v1/): start a run for a project, read it and its steps, page through
its log, cancel, retry; and the realtime path. The run's results, downloads and recipes are the read side's
(``analysis.workspace.api``).

Thin: runs are found through ``analysis.runs.selectors`` (a stranger gets 404) and changed by ``analysis.runs.services``
(a viewer who tries to write gets 403), the same functions the HTML pages call. A script can start a run, go
away, and read it later by id.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from projects.selectors import project_for

from analysis.models import Run
from analysis.runs import realtime, selectors, services
from analysis.runs.serializers import LogPageSerializer, RunRequestSerializer, RunSerializer, RunSummarySerializer

LOG_PAGE_LIMIT = 1000

FORBIDDEN = OpenApiResponse(description="Your role in the project does not allow this (`detail` says why).")
NOT_FOUND = OpenApiResponse(description="No such run or project, or it is not visible to you.")
CONFLICT = OpenApiResponse(description="The run's state does not allow this (`detail` says why).")

EXAMPLE_REQUEST = OpenApiExample(
    "Rankings and statistics for one model",
    value={"models": [1], "corpus": 2, "neuron_sets": ["hidden"],
           "rankings": [{"method": "lca"}, {"method": "anova"}, {"method": "probeless", "bootstrap": 20}],
           "statistics": True, "probe_ablation": False, "seed": 0},
    request_only=True,
)
EXAMPLE_MODEL_LEVEL_REQUEST = OpenApiExample(
    "Cross-model rankings and model-level ablation for two models",
    value={"models": [1, 3], "corpus": 2, "rankings": [{"method": "probeless"}], "statistics": False,
           "crossmodel": [{"method": "maxcorr"}, {"method": "svcca", "variance_kept": 0.99}],
           "model_ablation": {"test_set": 4, "percents": [10, 50, 100], "random_seeds": 1,
                              "modes": ["top", "bottom", "random"]}},
    request_only=True,
)


class RunStateConflict(exceptions.APIException):
    """The run's state does not allow the action (409), e.g. cancelling a finished run."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def _conflict(error: services.RunStateError) -> RunStateConflict:
    return RunStateConflict(error.message, code=error.code)


def _fake(view) -> bool:
    """True while drf-spectacular inspects the view (no real request user)."""
    return getattr(view, "swagger_fake_view", False)


class AfterSerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, default=0, help_text="Give lines numbered above this.")
    limit = serializers.IntegerField(min_value=1, max_value=LOG_PAGE_LIMIT, default=LOG_PAGE_LIMIT)


@extend_schema_view(
    list=extend_schema(summary="Runs of a project (any member may look)",
                       responses={200: RunSummarySerializer(many=True), 404: NOT_FOUND}),
    create=extend_schema(
        summary="Start a run (owners and editors)",
        description="Creates the run and its steps and queues what can start; the answer comes at once. Read "
        "the run by id later (`GET /api/v1/runs/{id}/`). Results that exist already are reused.",
        request=RunRequestSerializer, examples=[EXAMPLE_REQUEST, EXAMPLE_MODEL_LEVEL_REQUEST],
        responses={201: RunSerializer, 400: OpenApiResponse(description="Field errors: what to change."),
                   403: FORBIDDEN, 404: NOT_FOUND}),
)
class ProjectRunViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = RunSummarySerializer

    def get_queryset(self):
        if _fake(self):
            return Run.objects.none()
        project = project_for(self.request.user, self.kwargs["project_pk"])
        return selectors.runs_visible_to(self.request.user).filter(project=project)

    def create(self, request, project_pk=None):
        project = project_for(request.user, project_pk, write=True)
        shape = RunRequestSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        try:  # only the fields sent: the service fills in its own defaults
            run = services.create_run(request.user, project, dict(shape.validated_data))
        except DjangoValidationError as error:
            raise exceptions.ValidationError(error.message_dict) from None
        return Response(RunSerializer(selectors.run_for(request.user, run.pk)).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Runs of every project you are a member of"),
    retrieve=extend_schema(summary="One run with its steps (state, progress done/total/unit, reused, error)",
                           responses={200: RunSerializer, 404: NOT_FOUND}),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    lookup_value_converter = "int"

    def get_serializer_class(self):
        return RunSerializer if self.action == "retrieve" else RunSummarySerializer

    def get_queryset(self):
        if _fake(self):
            return Run.objects.none()
        return selectors.runs_visible_to(self.request.user)

    def get_object(self):
        return selectors.run_for(self.request.user, self.kwargs["pk"])

    @extend_schema(summary="The run's log lines numbered above `after`, in order",
                   parameters=[AfterSerializer], responses={200: LogPageSerializer, 404: NOT_FOUND})
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        run = self.get_object()
        paging = AfterSerializer(data=request.query_params)
        paging.is_valid(raise_exception=True)
        after, limit = paging.validated_data["after"], paging.validated_data["limit"]
        lines = list(selectors.log_lines_after(run, after, limit + 1))
        page = lines[:limit]
        return Response(LogPageSerializer({"lines": page, "last_seq": page[-1].seq if page else after,
                                           "more": len(lines) > limit}).data)

    @extend_schema(summary="Cancel the run (owners and editors): queued steps are dropped, running ones stop "
                   "at their next chunk", request=None,
                   responses={200: RunSerializer, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._change(services.cancel_run)

    @extend_schema(summary="Retry a failed or cancelled run (owners and editors): finished steps are kept",
                   request=None, responses={200: RunSerializer, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self._change(services.retry_run)

    def _change(self, change):
        """Cancel or retry (``change`` is the service); a state that does not allow it is a 409."""
        try:
            run = change(self.request.user, self.get_object())
        except services.RunStateError as error:
            raise _conflict(error) from None
        return Response(RunSerializer(run).data)


# ------------------------------------------------------------------------------------------------ realtime path


class RealtimeUnavailableError(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "realtime_unavailable"


class RealtimeTimeoutError(exceptions.APIException):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_code = "realtime_timeout"


class RealtimeActivationsRequestSerializer(serializers.Serializer):
    """For the schema: the realtime module checks the request against the project's model."""

    model = serializers.IntegerField(help_text="A model of the project (id).")
    sentence = serializers.CharField(help_text="Words separated by spaces (at most NEUROX_REALTIME_MAX_WORDS).")
    neuron_set = serializers.CharField(required=False, help_text="`hidden` (default) or `mlp` (`enc.`/`dec.` "
                                       "prefixed for encoder-decoders); ignored with `pool`.")
    pool = serializers.ListField(child=serializers.CharField(), required=False,
                                 help_text="Only these neurons (labels such as `L3:117`, `mlp.L2:5`).")
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=100, default=10)
    aggregation = serializers.ChoiceField(choices=["first", "last", "mean"], required=False, default="last")


class RealtimeEditSerializer(serializers.Serializer):
    neuron = serializers.CharField(help_text="A neuron label, e.g. `L3:117`.")
    operation = serializers.ChoiceField(choices=["zero", "mean", "clamp", "scale", "shift"], default="zero")
    value = serializers.FloatField(required=False, default=0.0)


class RealtimeManipulateRequestSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="A model of the project (id).")
    sentence = serializers.CharField(help_text="Words separated by spaces; for a masked LM write [MASK] or use "
                                     "`mask_words`.")
    edits = RealtimeEditSerializer(many=True)
    mode = serializers.ChoiceField(choices=["all", "words"], default="all",
                                   help_text="Change the neurons at every word, or only at `words`.")
    words = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False)
    mask_words = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False)
    max_new_tokens = serializers.IntegerField(required=False, min_value=1, max_value=64, default=20)
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=20, default=5)


REALTIME_ERRORS = {
    400: OpenApiResponse(description="The request does not fit the model (`fields` says what to change); nothing "
                         "was queued."),
    404: NOT_FOUND,
    503: OpenApiResponse(description="No realtime worker is running (`code`: `realtime_unavailable`)."),
    504: OpenApiResponse(description="The realtime worker did not answer in time (`code`: `realtime_timeout`)."),
}


class RealtimeView(viewsets.ViewSet):
    """Any member may call these (they read, never write); the answer comes from a realtime worker."""

    validate = None
    task_name = ""

    def post(self, request, project_pk=None):
        project = project_for(request.user, project_pk)
        data = request.data if isinstance(request.data, dict) else {}
        try:
            arguments = type(self).validate(project, data)
            answer = realtime.ask(self.task_name, arguments)
        except realtime.RealtimeRequestError as error:
            raise exceptions.ValidationError({error.field: [error.message]}) from None
        except realtime.RealtimeUnavailable as error:
            raise RealtimeUnavailableError(str(error)) from None
        except realtime.RealtimeTimeout as error:
            raise RealtimeTimeoutError(str(error)) from None
        return Response(answer)


class RealtimeActivationsView(RealtimeView):
    validate = staticmethod(realtime.validate_activations)
    task_name = realtime.ACTIVATIONS_TASK

    @extend_schema(
        summary="A typed sentence's most active neurons per word (any member)",
        description="Per word, the `top_k` neurons by |activation| (within `pool` when given), and `values`: "
        "the activation of each neuron in `neurons` at every word, for the activation map.",
        request=RealtimeActivationsRequestSerializer, responses={200: OpenApiTypes.OBJECT, **REALTIME_ERRORS},
        examples=[OpenApiExample("Top 5 hidden neurons per word", request_only=True,
                                 value={"model": 1, "sentence": "The cat sat on the mat .", "top_k": 5}),
                  OpenApiExample("A pool of neurons", request_only=True,
                                 value={"model": 1, "sentence": "The cat sat .", "pool": ["L3:117", "L5:2"]})])
    def post(self, request, project_pk=None):
        return super().post(request, project_pk)


class RealtimeManipulateView(RealtimeView):
    validate = staticmethod(realtime.validate_manipulation)
    task_name = realtime.MANIPULATE_TASK

    @extend_schema(
        summary="Original vs manipulated output for a sentence and neuron edits (any member)",
        description="Generation (decoders), translation (encoder-decoders), fill-mask (masked LMs), or for an "
        "encoder without a masked-LM head the cosine similarity of its embeddings before and after.",
        request=RealtimeManipulateRequestSerializer, responses={200: OpenApiTypes.OBJECT, **REALTIME_ERRORS},
        examples=[OpenApiExample("Zero two neurons at every word", request_only=True,
                                 value={"model": 1, "sentence": "The cat sat on the [MASK] .",
                                        "edits": [{"neuron": "L3:117", "operation": "zero"},
                                                  {"neuron": "mlp.L2:5", "operation": "scale", "value": 3}]})])
    def post(self, request, project_pk=None):
        return super().post(request, project_pk)
