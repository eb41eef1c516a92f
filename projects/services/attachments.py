"""Which uploads a project uses."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from .. import selectors
from ..models import PROJECT_RELATION, Project


def attach_upload(user, project: Project, upload) -> None:
    """Use an upload in a project. Needs write access to the project and sight of the upload."""
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project's uploads.")
    if not selectors.uploads_visible_to(user, upload.kind).filter(pk=upload.pk).exists():
        raise PermissionDenied("You cannot use this upload.")
    getattr(project, PROJECT_RELATION[upload.kind]).add(upload)


def detach_upload(user, project: Project, upload) -> None:
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project's uploads.")
    getattr(project, PROJECT_RELATION[upload.kind]).remove(upload)
