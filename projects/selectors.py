"""Reads, always scoped to a user: THE permission path for projects and uploads.

Every HTML view, API view, websocket consumer and the admin (for non-superusers) finds projects and uploads
through these functions. A project the user is not a member of does not exist for them (404); a member whose
role does not allow the action gets 403 (``PermissionDenied``). Superusers get no special treatment here; the
admin shows them everything through its own querysets.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, Sum
from django.http import Http404

from .models import (
    MANAGE_ROLES,
    PROJECT_RELATION,
    UPLOAD_MODELS,
    Role,
    WRITE_ROLES,
    CorpusUpload,
    Membership,
    ModelUpload,
    Project,
    TestSetUpload,
    UploadKind,
)


def _signed_in(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False)


def projects_visible_to(user):
    """Projects ``user`` is a member of (any role), and the example projects, which every signed-in user sees."""
    if not _signed_in(user):
        return Project.objects.none()
    return Project.objects.filter(Q(memberships__user=user) | Q(is_example=True)).distinct()


def role_of(user, project: Project) -> str | None:
    """``owner`` / ``editor`` / ``viewer``, or None for someone who is not a member. On an example project
    every signed-in user who is not a member is a viewer."""
    if not _signed_in(user):
        return None
    role = Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    return role or (Role.VIEWER if project.is_example else None)


def can_write(user, project: Project) -> bool:
    return role_of(user, project) in WRITE_ROLES


def can_manage(user, project: Project) -> bool:
    return role_of(user, project) in MANAGE_ROLES


def project_for(user, pk, *, write: bool = False, manage: bool = False) -> Project:
    """The project ``pk`` as ``user`` may see it. Not a member (or not signed in): ``Http404``. ``write=True``
    needs editor or owner, ``manage=True`` (members, deletion) needs owner; otherwise ``PermissionDenied``."""
    try:
        project = projects_visible_to(user).get(pk=pk)
    except (Project.DoesNotExist, ValueError, TypeError):
        raise Http404("No such project.")
    role = role_of(user, project)
    if manage and role not in MANAGE_ROLES:
        raise PermissionDenied("Only the project's owners can do this.")
    if write and role not in WRITE_ROLES:
        raise PermissionDenied("Viewers cannot change this project; ask an owner for the editor role.")
    return project


def memberships_of(project: Project):
    return project.memberships.select_related("user").order_by("user__username")


def membership_in(project: Project, membership_id) -> Membership:
    """One membership of ``project`` (404 if it is not one of this project's)."""
    try:
        return project.memberships.select_related("user", "project").get(pk=membership_id)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise Http404("No such member.")


# ---------------------------------------------------------------------------------------------- uploads


def uploads_visible_to(user, kind: str):
    """Uploads of one kind (``model`` / ``corpus`` / ``test_set``) that ``user`` can see: their own library,
    plus uploads attached to a project they are a member of or to an example project."""
    upload_model = UPLOAD_MODELS[UploadKind(kind)]
    if not _signed_in(user):
        return upload_model.objects.none()
    return upload_model.objects.filter(
        Q(owner=user) | Q(projects__memberships__user=user) | Q(projects__is_example=True)).distinct()


def library_of(user, kind: str):
    """The user's own uploads of one kind (what counts towards their quota)."""
    upload_model = UPLOAD_MODELS[UploadKind(kind)]
    if not _signed_in(user):
        return upload_model.objects.none()
    return upload_model.objects.filter(owner=user)


def upload_for(user, kind: str, pk, *, own: bool = False):
    """One upload as ``user`` may see it (404 otherwise). ``own=True`` (delete, rename) needs the owner: a
    member who can see it through a project gets 403."""
    try:
        upload = uploads_visible_to(user, kind).get(pk=pk)
    except (UPLOAD_MODELS[UploadKind(kind)].DoesNotExist, ValueError, TypeError):
        raise Http404("No such upload.")
    if own and upload.owner_id != user.pk:
        raise PermissionDenied("Only the person who uploaded this can change or delete it.")
    return upload


def first_upload_with_content(user, kind: str, sha256: str):
    """The user's earliest upload of ``kind`` with this content hash, or None."""
    return library_of(user, kind).filter(sha256=sha256).order_by("created_at", "id").first()


def project_uploads(project: Project) -> dict[str, list]:
    """The uploads attached to a project, by kind."""
    return {kind: list(getattr(project, relation).select_related("owner")) for kind, relation in PROJECT_RELATION.items()}


def storage_used_by(user) -> int:
    """Bytes of storage that ``user``'s uploads take (their quota usage)."""
    total = 0
    for upload_model in (ModelUpload, CorpusUpload, TestSetUpload):
        total += upload_model.objects.filter(owner=user).aggregate(total=Sum("size_bytes"))["total"] or 0
    return total
