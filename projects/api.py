"""REST endpoints for projects, memberships, attached uploads and the upload library (under /api/v1/).

Thin, like the HTML views: every project and upload is found through :mod:`projects.selectors` (strangers get
404, a role that may not write gets 403) and every change is made by :mod:`projects.services`, the same
functions the HTML pages call, so validation messages and the "a refused upload leaves nothing" guarantee are
shared. Service errors become the API's one error shape in :mod:`neurox_site.api_errors` (``{"detail", "code"}``,
plus ``"fields"`` for field errors).
"""

from __future__ import annotations

from django.db.models import Case, CharField, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from . import selectors, services
from .filters import CorpusUploadFilter, ModelUploadFilter, ProjectFilter, TestSetUploadFilter
from .models import Membership, Project, Role, UploadKind
from .serializers import (
    AddMemberSerializer,
    AttachedUploadSerializer,
    AttachSerializer,
    ChangeRoleSerializer,
    CorpusUploadCreateSerializer,
    CorpusUploadSerializer,
    MembershipSerializer,
    ModelUploadCreateSerializer,
    ModelUploadSerializer,
    ProjectSerializer,
    TestSetUploadCreateSerializer,
    TestSetUploadSerializer,
    UploadRefusedSerializer,
    UploadRenameSerializer,
)

# ---------------------------------------------------------------------------------------------- errors


REFUSED = OpenApiResponse(UploadRefusedSerializer, description="Refused: the message says which file and why. "
                          "Nothing was stored and no quota was used.")
FORBIDDEN = OpenApiResponse(description="Your role in the project does not allow this (`detail` says why).")
NOT_FOUND = OpenApiResponse(description="No such object, or it is not visible to you.")


def _fake(view) -> bool:
    """True while drf-spectacular inspects the view (no real request user)."""
    return getattr(view, "swagger_fake_view", False)


# ---------------------------------------------------------------------------------------------- projects


def _with_my_role(queryset, user):
    """Annotate each project with ``my_role``, the user's role in it, in the same query.

    Kept here (not in selectors) because only the API lists roles per project; ``selectors.role_of`` is the
    per-project equivalent."""
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    as_example = Case(When(is_example=True, then=Value(Role.VIEWER.value)), default=None,
                      output_field=CharField())
    return queryset.annotate(my_role=Coalesce(Subquery(role), as_example))


@extend_schema_view(
    list=extend_schema(summary="Projects you are a member of",
                       description="Filter by `name` (part of it), `owner` or your `role`; `search` looks in the "
                       "name and description; `ordering` by name, created_at or updated_at (prefix - to reverse)."),
    create=extend_schema(summary="Create a project (you become its owner)"),
    retrieve=extend_schema(summary="One project", responses={200: ProjectSerializer, 404: NOT_FOUND}),
    update=extend_schema(summary="Change name and description (owners and editors)",
                         responses={200: ProjectSerializer, 403: FORBIDDEN, 404: NOT_FOUND}),
    partial_update=extend_schema(summary="Change name or description (owners and editors)",
                                 responses={200: ProjectSerializer, 403: FORBIDDEN, 404: NOT_FOUND}),
    destroy=extend_schema(summary="Delete the project (owners); uploads stay in their owners' libraries",
                          responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND}),
)
class ProjectViewSet(viewsets.ModelViewSet):
    serializer_class = ProjectSerializer
    filter_backends = [DjangoFilterBackend, SearchFilter, OrderingFilter]
    filterset_class = ProjectFilter
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name", "id"]
    lookup_value_converter = "int"

    def get_queryset(self):
        if _fake(self):
            return Project.objects.none()
        user = self.request.user
        return _with_my_role(selectors.projects_visible_to(user), user).select_related("owner")

    def get_object(self):
        project = selectors.project_for(
            self.request.user, self.kwargs["pk"],
            write=self.action in ("update", "partial_update"), manage=self.action == "destroy",
        )
        project.my_role = selectors.role_of(self.request.user, project)
        return project

    def perform_create(self, serializer):
        project = services.create_project(self.request.user, **serializer.validated_data)
        project.my_role = Role.OWNER
        serializer.instance = project

    def perform_update(self, serializer):
        services.update_project(self.request.user, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_project(self.request.user, instance)


# ---------------------------------------------------------------------------------------------- members


@extend_schema_view(
    list=extend_schema(summary="Members of a project (any member may look)"),
    retrieve=extend_schema(summary="One membership", responses={200: MembershipSerializer, 404: NOT_FOUND}),
    create=extend_schema(summary="Add a member by username or e-mail (owners)", request=AddMemberSerializer,
                         responses={201: MembershipSerializer, 400: OpenApiResponse(description="Field errors."),
                                    403: FORBIDDEN, 404: NOT_FOUND}),
    partial_update=extend_schema(summary="Change a member's role (owners)", request=ChangeRoleSerializer,
                                 responses={200: MembershipSerializer, 403: FORBIDDEN, 404: NOT_FOUND}),
    destroy=extend_schema(summary="Remove a member (owners), or leave the project yourself",
                          responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND}),
)
class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                        viewsets.GenericViewSet):
    serializer_class = MembershipSerializer
    lookup_value_converter = "int"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def project(self, *, manage: bool = False) -> Project:
        return selectors.project_for(self.request.user, self.kwargs["project_pk"], manage=manage)

    def get_queryset(self):
        if _fake(self):
            return Membership.objects.none()
        return selectors.memberships_of(self.project())

    def get_object(self):
        return selectors.membership_in(self.project(), self.kwargs["pk"])

    def create(self, request, project_pk=None):
        project = self.project(manage=True)
        serializer = AddMemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.add_member(request.user, project, serializer.validated_data["user"],
                                         serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, project_pk=None, pk=None):
        project = self.project(manage=True)
        membership = selectors.membership_in(project, pk)
        serializer = ChangeRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.change_role(request.user, membership, serializer.validated_data["role"])
        return Response(MembershipSerializer(membership).data)

    def destroy(self, request, project_pk=None, pk=None):
        membership = self.get_object()  # any member may leave; the service checks who removes whom
        services.remove_member(request.user, membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------------- attachments


KIND_PARAMETER = OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=UploadKind.values,
                                  description="model, corpus or test_set")


def _upload_kind(kind: str) -> UploadKind:
    try:
        return UploadKind(kind)
    except ValueError:
        raise Http404("No such kind of upload: choose model, corpus or test_set.") from None


@extend_schema_view(
    list=extend_schema(summary="Uploads used by a project (any member may look)",
                       responses={200: AttachedUploadSerializer(many=True), 404: NOT_FOUND}),
    create=extend_schema(summary="Use an upload from your own library in the project (owners and editors; "
                         "only an upload's owner adds it to a project)", request=AttachSerializer,
                         responses={201: AttachedUploadSerializer, 403: FORBIDDEN, 404: NOT_FOUND}),
    destroy=extend_schema(summary="Stop using an upload in the project; it stays in its owner's library "
                          "(owners and editors)", parameters=[KIND_PARAMETER],
                          responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND}),
)
class ProjectUploadViewSet(viewsets.GenericViewSet):
    serializer_class = AttachedUploadSerializer
    pagination_class = None  # a project uses a handful of uploads

    def get_queryset(self):  # for the schema generator only: the actions read through selectors
        return Project.objects.none()

    def list(self, request, project_pk=None):
        project = selectors.project_for(request.user, project_pk)
        attached = [upload for uploads in selectors.project_uploads(project).values() for upload in uploads]
        return Response(AttachedUploadSerializer(attached, many=True).data)

    def create(self, request, project_pk=None):
        project = selectors.project_for(request.user, project_pk, write=True)
        serializer = AttachSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = selectors.upload_for(request.user, serializer.validated_data["kind"],
                                      serializer.validated_data["upload"])
        services.attach_upload(request.user, project, upload)
        return Response(AttachedUploadSerializer(upload).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, project_pk=None, kind=None, upload_id=None):
        project = selectors.project_for(request.user, project_pk, write=True)
        attached = {upload.pk: upload for upload in selectors.project_uploads(project)[_upload_kind(kind)]}
        if upload_id not in attached:
            raise Http404("That upload is not used by this project.")
        services.detach_upload(request.user, project, attached[upload_id])
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------------------------- library


class UploadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Uploads of one kind: your library plus uploads shared with you through a project. Creating needs a
    multipart request; renaming and deleting are for the person who uploaded."""

    kind: UploadKind
    create_serializer_class: type
    filter_backends = [DjangoFilterBackend, SearchFilter, OrderingFilter]
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at", "size_bytes"]
    ordering = ["-created_at", "-id"]
    lookup_value_converter = "int"
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if _fake(self):
            return self.serializer_class.Meta.model.objects.none()
        return selectors.uploads_visible_to(self.request.user, self.kind).select_related("owner")

    def get_object(self):
        return selectors.upload_for(self.request.user, self.kind, self.kwargs["pk"],
                                    own=self.action in ("partial_update", "destroy"))

    def create(self, request):
        serializer = self.create_serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = services.create_upload(request.user, self.kind, serializer.validated_data)
        return Response(self.get_serializer(upload).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        upload = self.get_object()
        serializer = UploadRenameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.rename_upload(request.user, upload, **serializer.validated_data)
        return Response(self.get_serializer(upload).data)

    def destroy(self, request, pk=None):
        services.delete_upload(request.user, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _library_schema(noun: str, serializer, create_serializer, create_description: str):
    return extend_schema_view(
        list=extend_schema(summary=f"{noun.capitalize()}s you can use",
                           description="Your own and those shared with you through a project (`own=true` for "
                           "yours only). `search` looks in name and description."),
        retrieve=extend_schema(summary=f"One {noun}", responses={200: serializer, 404: NOT_FOUND}),
        create=extend_schema(
            summary=f"Upload a {noun} (multipart)", description=create_description,
            request={"multipart/form-data": create_serializer},
            responses={201: serializer, 400: REFUSED},
        ),
        partial_update=extend_schema(summary=f"Rename a {noun} (the person who uploaded it)",
                                     request=UploadRenameSerializer,
                                     responses={200: serializer, 403: FORBIDDEN, 404: NOT_FOUND}),
        destroy=extend_schema(summary=f"Delete a {noun}: its files, its row and its use in projects "
                              "(the person who uploaded it)", responses={204: None, 403: FORBIDDEN, 404: NOT_FOUND}),
    )


@_library_schema(
    "model", ModelUploadSerializer, ModelUploadCreateSerializer,
    "A HuggingFace-format model folder as one .zip / .tar.gz, or as separate `files` parts. Safetensors weights "
    "only; `config.json` must name a model_type that transformers knows.",
)
class ModelUploadViewSet(UploadViewSet):
    kind = UploadKind.MODEL
    serializer_class = ModelUploadSerializer
    create_serializer_class = ModelUploadCreateSerializer
    filterset_class = ModelUploadFilter


@_library_schema(
    "corpus", CorpusUploadSerializer, CorpusUploadCreateSerializer,
    "CoNLL-U (`format=conllu`, labels from `label_column`) or NeuroX plain (`format=plain`: the .word `file` and "
    "an optional line-aligned `label_file`).",
)
class CorpusUploadViewSet(UploadViewSet):
    kind = UploadKind.CORPUS
    serializer_class = CorpusUploadSerializer
    create_serializer_class = CorpusUploadCreateSerializer
    filterset_class = CorpusUploadFilter


@_library_schema(
    "test set", TestSetUploadSerializer, TestSetUploadCreateSerializer,
    "Source sentences, one per line, and optionally line-aligned references (for encoder–decoder models).",
)
class TestSetUploadViewSet(UploadViewSet):
    __test__ = False  # not a pytest class

    kind = UploadKind.TEST_SET
    serializer_class = TestSetUploadSerializer
    create_serializer_class = TestSetUploadCreateSerializer
    filterset_class = TestSetUploadFilter
