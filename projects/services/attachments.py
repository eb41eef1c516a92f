"""Which uploads a project uses.

The rule: only an upload's owner attaches it to a project. Members see and use it inside that project only;
they cannot carry it into another project, so removing someone from a project ends their access to its uploads.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from .. import selectors
from ..models import PROJECT_RELATION, Project


def attach_upload(user, project: Project, upload) -> None:
    """Use an upload in a project. Needs write access to the project and ownership of the upload."""
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project's uploads.")
    if upload.owner_id != user.pk:
        raise PermissionDenied("Only the person who uploaded this can add it to a project.")
    getattr(project, PROJECT_RELATION[upload.kind]).add(upload)


def detach_upload(user, project: Project, upload) -> None:
    if not selectors.can_write(user, project):
        raise PermissionDenied("Viewers cannot change this project's uploads.")
    getattr(project, PROJECT_RELATION[upload.kind]).remove(upload)
