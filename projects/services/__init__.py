"""Writes for projects, memberships and uploads: the only place that changes their state.

Services take the acting user, plain arguments and uploaded file objects (anything with ``name``, ``size`` and
``chunks()``, e.g. Django's ``UploadedFile``), check permissions through :mod:`projects.selectors`, and raise
``PermissionDenied`` or a ``ValidationError`` (:class:`~projects.uploads.UploadRefused` for uploads) whose
message is meant for the user. HTML views and the REST API call the same functions.

One module per concern: :mod:`.projects` (create, change, delete), :mod:`.members` (who is in a project),
:mod:`.attachments` (which uploads a project uses), :mod:`.library` (creating, renaming and deleting uploads)
and :mod:`.storage` (the temporary folder, quota checks and the storage backend behind every upload).
"""

from .attachments import attach_upload, detach_upload
from .library import (
    create_corpus_upload,
    create_model_upload,
    create_test_set_upload,
    create_upload,
    delete_upload,
    rename_upload,
)
from .members import add_member, change_role, find_user, remove_member
from .projects import create_project, delete_project, update_project
from .storage import local_folder

__all__ = [
    "add_member", "attach_upload", "change_role", "create_corpus_upload", "create_model_upload", "create_project",
    "create_test_set_upload", "create_upload", "delete_project", "delete_upload", "detach_upload", "find_user",
    "local_folder", "remove_member", "rename_upload", "update_project",
]
