"""HTML views for projects, members and uploads: parse, call a selector or a service, render.

Every project is found through :func:`projects.selectors.project_for` (404 for strangers, 403 for a role that
may not do this); sign-in is enforced by ``LoginRequiredMiddleware``. htmx requests get the page's partial
back (``template.html#partial``); on success of a form that moves elsewhere they get an ``HX-Redirect``.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts.quotas import storage_used

from . import selectors, services
from .forms import (
    AddMemberForm,
    AttachForm,
    CorpusUploadForm,
    ModelUploadForm,
    ProjectForm,
    RoleForm,
    TestSetUploadForm,
    UploadEditForm,
)
from .models import MANAGE_ROLES, PROJECT_RELATION, WRITE_ROLES, Role, UploadKind
from .uploads import UploadRefused

UPLOAD_FORMS = {
    UploadKind.MODEL: ModelUploadForm,
    UploadKind.CORPUS: CorpusUploadForm,
    UploadKind.TEST_SET: TestSetUploadForm,
}
# which form field shows an upload refusal inline (quota and size refusals go on top of the form)
REFUSAL_FIELD = {"model": "files", "corpus": "file", "test_set": "file", "archive": "files"}


def _kind(kind: str) -> UploadKind:
    try:
        return UploadKind(kind)
    except ValueError:
        raise Http404("No such kind of upload.")


def _redirect(request, url: str) -> HttpResponse:
    """A redirect that htmx follows as a full page load."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _next_or(request, default: str) -> str:
    """``?next=`` when it is a path on this site (the new-analysis form sends people to upload and back), else
    ``default``."""
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


def _apply_errors(form, error: ValidationError, default_field: str | None = None) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(default_field, error)


# ---------------------------------------------------------------------------------------------- projects


@require_http_methods(["GET", "POST"])
def project_list(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.create_project(request.user, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, f"Project “{project.name}” created.")
            return _redirect(request, project.get_absolute_url())
    projects = selectors.projects_visible_to(request.user).select_related("owner").order_by("name", "id")
    template = "projects/list.html#create-form" if request.htmx and request.method == "POST" else "projects/list.html"
    return render(request, template, {"projects": projects, "form": form})


def _detail_context(request, project, **extra):
    role = selectors.role_of(request.user, project)
    attached = selectors.project_uploads(project)
    attachable = {}
    if role in WRITE_ROLES:
        for kind, items in attached.items():
            attached_ids = {item.pk for item in items}
            attachable[kind] = [
                upload for upload in selectors.library_of(request.user, kind).order_by("name")
                if upload.pk not in attached_ids
            ]
    return {
        "project": project,
        "current_project": project,
        "role": role,
        "can_write": role in WRITE_ROLES,
        "can_manage": role in MANAGE_ROLES,
        "memberships": selectors.memberships_of(project),
        "attached": attached,
        "attachable": attachable,
        **extra,
    }


def project_detail(request, pk):
    project = selectors.project_for(request.user, pk)
    return render(request, "projects/detail.html", _detail_context(request, project))


@require_http_methods(["GET", "POST"])
def project_edit(request, pk):
    project = selectors.project_for(request.user, pk, write=True)
    form = ProjectForm(request.POST or None, initial={"name": project.name, "description": project.description})
    if request.method == "POST" and form.is_valid():
        try:
            services.update_project(request.user, project, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, "Project saved.")
            return _redirect(request, project.get_absolute_url())
    return render(request, "projects/edit.html", {"project": project, "current_project": project, "form": form})


@require_POST
def project_delete(request, pk):
    project = selectors.project_for(request.user, pk, manage=True)
    name = project.name
    try:
        services.delete_project(request.user, project)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _redirect(request, project.get_absolute_url())
    messages.success(request, f"Project “{name}” deleted.")
    return _redirect(request, reverse("projects:list"))


# ---------------------------------------------------------------------------------------------- members


def _members_response(request, project, form=None, status=200):
    context = {
        "project": project,
        "current_project": project,
        "can_manage": selectors.can_manage(request.user, project),
        "memberships": selectors.memberships_of(project),
        "form": form or AddMemberForm(),
        "roles": Role.choices,
    }
    template = "projects/members.html#members-panel" if request.htmx else "projects/members.html"
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def members(request, pk):
    if request.method == "GET":
        return _members_response(request, selectors.project_for(request.user, pk))
    project = selectors.project_for(request.user, pk, manage=True)
    form = AddMemberForm(request.POST)
    if form.is_valid():
        try:
            membership = services.add_member(request.user, project, form.cleaned_data["user"],
                                             form.cleaned_data["role"])
        except ValidationError as error:
            _apply_errors(form, error, "user")
        else:
            messages.success(request, f"{membership.user.get_username()} added as {membership.get_role_display()}.")
            form = None
    return _members_response(request, project, form)


@require_POST
def member_role(request, pk, membership_id):
    project = selectors.project_for(request.user, pk, manage=True)
    membership = selectors.membership_in(project, membership_id)
    form = RoleForm(request.POST)
    if form.is_valid():
        try:
            services.change_role(request.user, membership, form.cleaned_data["role"])
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display()}.")
    else:
        messages.error(request, "Choose owner, editor or viewer.")
    return _members_response(request, project)


@require_POST
def member_remove(request, pk, membership_id):
    project = selectors.project_for(request.user, pk)  # any member may leave; services check the rest
    membership = selectors.membership_in(project, membership_id)
    leaving = membership.user_id == request.user.pk
    try:
        services.remove_member(request.user, membership)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _members_response(request, project)
    if leaving:
        messages.success(request, f"You left “{project.name}”.")
        return _redirect(request, reverse("projects:list"))
    messages.success(request, f"{membership.user.get_username()} removed.")
    return _members_response(request, project)


# ---------------------------------------------------------------------------------------------- attachments


def _uploads_panel(request, project):
    template = "projects/detail.html#uploads-panel" if request.htmx else "projects/detail.html"
    return render(request, template, _detail_context(request, project))


@require_POST
def attach(request, pk):
    project = selectors.project_for(request.user, pk, write=True)
    form = AttachForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an upload to add.")
        return _uploads_panel(request, project)
    upload = selectors.upload_for(request.user, form.cleaned_data["kind"], form.cleaned_data["upload"])
    services.attach_upload(request.user, project, upload)
    messages.success(request, f"“{upload.name}” added to the project.")
    return _uploads_panel(request, project)


@require_POST
def detach(request, pk, kind, upload_id):
    project = selectors.project_for(request.user, pk, write=True)
    kind = _kind(kind)
    attached = {item.pk: item for item in selectors.project_uploads(project)[kind]}
    if upload_id not in attached:
        raise Http404("That upload is not in this project.")
    services.detach_upload(request.user, project, attached[upload_id])
    messages.success(request, f"“{attached[upload_id].name}” removed from the project (it stays in the library).")
    return _uploads_panel(request, project)


# ---------------------------------------------------------------------------------------------- uploads


def library(request):
    context = {
        "own": {kind: selectors.library_of(request.user, kind) for kind in UploadKind},
        "shared": {
            kind: selectors.uploads_visible_to(request.user, kind).exclude(owner=request.user).select_related("owner")
            for kind in UploadKind
        },
        "storage_used": storage_used(request.user),  # uploads and the results of the user's runs
        "storage_quota": request.user.effective_storage_quota,
    }
    return render(request, "projects/library.html", context)


@require_http_methods(["GET", "POST"])
def upload_new(request, kind, pk=None):
    """Upload into the library; with a project (``pk``), also add it to that project (needs write access)."""
    kind = _kind(kind)
    project = selectors.project_for(request.user, pk, write=True) if pk is not None else None
    form_class = UPLOAD_FORMS[kind]
    form = form_class(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            upload = services.create_upload(request.user, kind, form.cleaned_data)
        except UploadRefused as error:
            form.add_error(REFUSAL_FIELD.get(error.code), error.message)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            for note in upload.metadata.get("notes", []):
                messages.info(request, note)
            if project is not None:
                services.attach_upload(request.user, project, upload)
                messages.success(request, f"“{upload.name}” uploaded and added to {project.name}.")
                return _redirect(request, _next_or(request, project.get_absolute_url()))
            messages.success(request, f"“{upload.name}” uploaded.")
            return _redirect(request, reverse("projects:upload-detail", args=[kind.value, upload.pk]))
    context = {"form": form, "kind": kind, "project": project, "current_project": project,
               "action": request.get_full_path()}
    template = "projects/upload_form.html#upload-form" if request.htmx else "projects/upload_form.html"
    return render(request, template, context)


def upload_detail(request, kind, upload_id):
    kind = _kind(kind)
    upload = selectors.upload_for(request.user, kind, upload_id)
    projects = selectors.projects_visible_to(request.user).filter(**{PROJECT_RELATION[kind]: upload})
    return render(request, "projects/upload_detail.html", {
        "upload": upload, "kind": kind, "is_owner": upload.owner_id == request.user.pk, "projects": projects,
    })


@require_http_methods(["GET", "POST"])
def upload_edit(request, kind, upload_id):
    kind = _kind(kind)
    upload = selectors.upload_for(request.user, kind, upload_id, own=True)
    form = UploadEditForm(request.POST or None, initial={"name": upload.name, "description": upload.description})
    detail_url = reverse("projects:upload-detail", args=[kind.value, upload.pk])
    if request.method == "POST" and form.is_valid():
        try:
            services.rename_upload(request.user, upload, **form.cleaned_data)
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(request, "Upload saved.")
            return _redirect(request, detail_url)
    return render(request, "projects/upload_edit.html", {"upload": upload, "kind": kind, "form": form,
                                                         "cancel_url": detail_url})


@require_POST
def upload_delete(request, kind, upload_id):
    kind = _kind(kind)
    upload = selectors.upload_for(request.user, kind, upload_id, own=True)
    name = upload.name
    try:
        services.delete_upload(request.user, upload)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _redirect(request, reverse("projects:upload-detail", args=[kind.value, upload_id]))
    messages.success(request, f"“{name}” deleted.")
    return _redirect(request, reverse("projects:library"))
