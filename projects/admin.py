"""Django admin for projects, memberships and uploads.

Superusers see everything. Other staff see only what :mod:`projects.selectors` lets them see as a user
(``projects_visible_to`` / ``uploads_visible_to``), and may change a project only where their role allows it
(editor or owner to edit, owner to delete or manage members). Uploads are never added here (their files must
go through validation in :mod:`projects.services`); deleting one goes through ``services.delete_upload`` so its
files leave storage with the row. Quotas are on the User admin (accounts).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from accounts.quotas import human_bytes

from . import selectors, services
from .models import CorpusUpload, Membership, ModelUpload, Project, Role, TestSetUpload, UploadKind


def _restricted(request) -> bool:
    return not request.user.is_superuser


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]

    def _may_manage(self, request, obj) -> bool:
        return not _restricted(request) or obj is None or selectors.can_manage(request.user, obj)

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._may_manage(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_manage(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_manage(request, obj)


UPLOAD_FIELDS = ["model_uploads", "corpus_uploads", "test_set_uploads"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "member_count", "created_at", "updated_at"]
    list_filter = ["created_at", "updated_at"]
    search_fields = ["name", "description", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "updated_at"]
    autocomplete_fields = ["owner", "model_uploads", "corpus_uploads", "test_set_uploads"]
    fieldsets = [
        (None, {"fields": ["name", "description", "owner", "created_at", "updated_at"]}),
        ("Uploads used by this project", {"fields": ["model_uploads", "corpus_uploads", "test_set_uploads"]}),
    ]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        queryset = super().get_queryset(request) if not _restricted(request) else (
            selectors.projects_visible_to(request.user).select_related("owner")
        )
        return queryset.annotate(member_total=Count("memberships", distinct=True))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, project) -> int:
        return project.member_total

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or not _restricted(request) or selectors.can_write(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not _restricted(request) or selectors.can_manage(request.user, obj))

    def get_readonly_fields(self, request, obj=None):
        # the creator stays the owner; only a superuser may hand a project to someone else
        if obj is not None and _restricted(request):
            # and, as on the site, only an upload's owner attaches it (projects/services/attachments.py)
            return [*self.readonly_fields, "owner", *UPLOAD_FIELDS]
        return self.readonly_fields

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # As services.create_project does: the creator always holds the owner role.
        Membership.objects.update_or_create(project=form.instance, user=form.instance.owner,
                                            defaults={"role": Role.OWNER})


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__username", "user__email", "project__name"]
    list_select_related = ["user", "project"]
    autocomplete_fields = ["user", "project"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if _restricted(request):
            queryset = queryset.filter(project__in=selectors.projects_visible_to(request.user))
        return queryset

    def _may_manage(self, request, obj) -> bool:
        return obj is None or not _restricted(request) or selectors.can_manage(request.user, obj.project)

    def has_add_permission(self, request):
        # staff who are not superusers add members on the project's page, where their role is checked
        return super().has_add_permission(request) and not _restricted(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_manage(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_manage(request, obj)


class UploadAdmin(admin.ModelAdmin):
    """Common admin for the three kinds of upload: hashes, files and validation facts are read-only."""

    kind: UploadKind
    common_readonly = ["uuid", "owner", "created_at", "size_bytes", "sha256", "storage_prefix", "files", "metadata"]
    search_fields = ["name", "description", "sha256", "owner__username", "owner__email"]
    list_select_related = ["owner"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        if _restricted(request):
            return selectors.uploads_visible_to(request.user, self.kind).select_related("owner")
        return super().get_queryset(request)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, upload) -> str:
        return human_bytes(upload.size_bytes)

    def has_add_permission(self, request):
        return False  # files must go through validation: the library's upload page or the API

    def _owns_or_superuser(self, request, obj) -> bool:
        return obj is None or not _restricted(request) or obj.owner_id == request.user.pk

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._owns_or_superuser(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._owns_or_superuser(request, obj)

    def delete_model(self, request, obj):
        # The one delete path (removes the stored files once the transaction commits), acting for the owner.
        services.delete_upload(obj.owner, obj)

    def delete_queryset(self, request, queryset):
        for upload in queryset.select_related("owner"):
            services.delete_upload(upload.owner, upload)


@admin.register(ModelUpload)
class ModelUploadAdmin(UploadAdmin):
    kind = UploadKind.MODEL
    list_display = ["name", "owner", "model_type", "model_kind", "n_layers", "hidden_size", "n_parameters", "size",
                    "created_at"]
    list_filter = ["model_kind", "model_type", "created_at"]
    readonly_fields = [*UploadAdmin.common_readonly, "model_type", "architecture", "model_kind", "n_layers",
                       "hidden_size", "n_parameters"]


@admin.register(CorpusUpload)
class CorpusUploadAdmin(UploadAdmin):
    kind = UploadKind.CORPUS
    list_display = ["name", "owner", "format", "label_column", "n_sentences", "n_words", "n_labels", "size",
                    "created_at"]
    list_filter = ["format", "label_column", "created_at"]
    readonly_fields = [*UploadAdmin.common_readonly, "format", "label_column", "n_sentences", "n_words", "n_labels"]


@admin.register(TestSetUpload)
class TestSetUploadAdmin(UploadAdmin):
    kind = UploadKind.TEST_SET
    list_display = ["name", "owner", "n_sentences", "has_references", "size", "created_at"]
    list_filter = ["has_references", "created_at"]
    readonly_fields = [*UploadAdmin.common_readonly, "n_sentences", "has_references"]
