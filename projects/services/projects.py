"""Creating, changing and deleting projects."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from .. import selectors
from ..models import Membership, Project, Role


def create_project(user, *, name: str, description: str = "") -> Project:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A project needs a name."})
    with transaction.atomic():
        project = Project.objects.create(name=name, description=description or "", owner=user)
        Membership.objects.create(project=project, user=user, role=Role.OWNER)
    return project


def update_project(user, project: Project, *, name: str | None = None, description: str | None = None) -> Project:
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project.")
    if name is not None:
        if not name.strip():
            raise ValidationError({"name": "A project needs a name."})
        project.name = name.strip()
    if description is not None:
        project.description = description
    project.save()
    return project


def delete_project(user, project: Project) -> None:
    """Delete the project (its memberships and attachments; the uploads stay in their owners' libraries)."""
    if not selectors.can_manage(user, project):
        raise PermissionDenied("Only the project's owners can delete it.")
    try:
        project.delete()
    except ProtectedError:
        raise ValidationError("This project still has runs that keep it; delete them first.") from None
