"""Admin for projects, memberships and uploads: every page loads for a superuser; staff who are not superusers
see only what the selectors let them see and change only what their role allows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects import services
from projects.models import CorpusUpload, Membership, ModelUpload, Project, Role, TestSetUpload
from tests.factories import ProjectFactory, UserFactory
from tests.support.upload_files import folder_entries, zip_of

pytestmark = pytest.mark.django_db

MODELS = [Project, Membership, ModelUpload, CorpusUpload, TestSetUpload]


@pytest.fixture
def library(people, storage_root, tiny_model_dir):
    """One upload of each kind, the editor's, all attached to the project; and a stranger's private test set."""
    editor, project = people["editor"], people["project"]
    model = services.create_model_upload(
        editor, files=[SimpleUploadedFile("tiny.zip", zip_of(folder_entries(tiny_model_dir)))], name="Tiny BERT")
    corpus = services.create_corpus_upload(
        editor, format="plain", file=SimpleUploadedFile("c.word", b"The cat .\n"),
        label_file=SimpleUploadedFile("c.label", b"DT NN .\n"), name="Cats")
    test_set = services.create_test_set_upload(editor, file=SimpleUploadedFile("t.txt", b"Hi .\n"), name="Hi")
    for upload in (model, corpus, test_set):
        services.attach_upload(editor, project, upload)
    private = services.create_test_set_upload(people["stranger"], file=SimpleUploadedFile("p.txt", b"Secret .\n"),
                                              name="Sam's secret")
    hidden = ProjectFactory(owner=people["stranger"], name="Sam's hidden project")
    return {**people, "model": model, "corpus": corpus, "test_set": test_set, "private": private, "hidden": hidden}


def _admin_url(model, page, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)


def _objects(world):
    return {
        Project: world["project"],
        Membership: world["project"].memberships.get(user=world["viewer"]),
        ModelUpload: world["model"],
        CorpusUpload: world["corpus"],
        TestSetUpload: world["test_set"],
    }


@pytest.fixture
def superuser_client(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def staff_client(client, user):
    """``client`` signed in as ``user``, made staff with every permission on the projects models."""
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="projects"))
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_superuser_changelist_search_and_change_pages_load(superuser_client, library, model):
    changelist = superuser_client.get(_admin_url(model, "changelist"))
    assert changelist.status_code == 200
    assert superuser_client.get(_admin_url(model, "changelist") + "?q=e").status_code == 200
    obj = _objects(library)[model]
    change = superuser_client.get(_admin_url(model, "change", obj.pk))
    assert change.status_code == 200
    assert str(obj) in change.content.decode()


def test_superuser_sees_every_project_and_upload(superuser_client, library):
    projects = superuser_client.get(_admin_url(Project, "changelist")).content.decode()
    assert "Probing MiniLM" in projects and "Sam&#x27;s hidden project" in projects
    uploads = superuser_client.get(_admin_url(TestSetUpload, "changelist")).content.decode()
    assert "Sam&#x27;s secret" in uploads


def test_upload_hashes_and_metadata_are_read_only_and_uploads_cannot_be_added(superuser_client, library):
    page = superuser_client.get(_admin_url(ModelUpload, "change", library["model"].pk))
    form = page.context["adminform"].form
    assert not {"sha256", "files", "metadata", "storage_prefix", "size_bytes", "n_parameters"} & set(form.fields)
    assert library["model"].sha256 in page.content.decode()
    assert superuser_client.get(_admin_url(ModelUpload, "add")).status_code == 403


def test_project_added_in_the_admin_gives_its_owner_the_owner_role(superuser_client, people):
    response = superuser_client.post(_admin_url(Project, "add"), {
        "name": "From the admin", "description": "", "owner": people["viewer"].pk,
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-user": people["editor"].pk, "memberships-0-role": "editor",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    project = Project.objects.get(name="From the admin")
    assert dict(project.memberships.values_list("user__username", "role")) == {"vera": "owner", "eddie": "editor"}


def test_admin_delete_of_an_upload_removes_its_files(superuser_client, library, django_capture_on_commit_callbacks):
    upload = library["test_set"]
    stored = [upload.storage_name(name) for name in upload.files]
    assert all(default_storage.exists(name) for name in stored)
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.post(_admin_url(TestSetUpload, "delete", upload.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not TestSetUpload.objects.filter(pk=upload.pk).exists()
    assert not any(default_storage.exists(name) for name in stored)


# ---------------------------------------------------------------------------------------------- staff


def test_staff_sees_only_visible_projects(client, library):
    staff = staff_client(client, library["viewer"])
    page = staff.get(_admin_url(Project, "changelist"))
    assert page.status_code == 200
    assert [p.name for p in page.context["cl"].result_list] == ["Probing MiniLM"]
    hidden = staff.get(_admin_url(Project, "change", library["hidden"].pk))
    assert hidden.status_code == 302  # "does not exist" → back to the admin index
    assert not Project.objects.filter(pk=library["hidden"].pk, memberships__user=library["viewer"]).exists()


def test_staff_sees_only_visible_memberships_and_uploads(client, library):
    staff = staff_client(client, library["viewer"])
    members = staff.get(_admin_url(Membership, "changelist")).context["cl"].result_list
    assert {m.project_id for m in members} == {library["project"].pk}
    test_sets = staff.get(_admin_url(TestSetUpload, "changelist")).context["cl"].result_list
    assert [u.name for u in test_sets] == ["Hi"]  # attached to the project; Sam's secret is not visible
    assert staff.get(_admin_url(TestSetUpload, "change", library["private"].pk)).status_code == 302
    for model in (ModelUpload, CorpusUpload):
        assert len(staff.get(_admin_url(model, "changelist")).context["cl"].result_list) == 1


def test_staff_viewer_may_look_but_not_change_or_delete(client, library):
    staff = staff_client(client, library["viewer"])
    project = library["project"]
    page = staff.get(_admin_url(Project, "change", project.pk))
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    staff.post(_admin_url(Project, "change", project.pk), {"name": "Hijacked", "owner": library["viewer"].pk})
    project.refresh_from_db()
    assert project.name == "Probing MiniLM"
    assert staff.post(_admin_url(Project, "delete", project.pk), {"post": "yes"}).status_code == 403
    assert staff.post(_admin_url(TestSetUpload, "delete", library["test_set"].pk), {"post": "yes"}).status_code == 403
    assert Project.objects.filter(pk=project.pk).exists() and TestSetUpload.objects.filter(
        pk=library["test_set"].pk).exists()


def test_staff_editor_may_change_the_project_but_not_its_owner(client, library):
    staff = staff_client(client, library["editor"])
    project = library["project"]
    page = staff.get(_admin_url(Project, "change", project.pk))
    assert page.context["has_change_permission"] is True
    assert "owner" not in page.context["adminform"].form.fields
    assert staff.post(_admin_url(Project, "delete", project.pk), {"post": "yes"}).status_code == 403


def test_staff_cannot_carry_a_shared_upload_into_their_own_project(client, library):
    """The re-sharing rule holds in the admin too: staff change a project's uploads on the site only."""
    viewer = library["viewer"]
    own = services.create_project(viewer, name="Vera's")
    staff = staff_client(client, viewer)
    page = staff.get(_admin_url(Project, "change", own.pk))
    assert "test_set_uploads" not in page.context["adminform"].form.fields
    staff.post(_admin_url(Project, "change", own.pk), {
        "name": own.name, "description": "", "test_set_uploads": [library["test_set"].pk],
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0", "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000"})
    assert own.test_set_uploads.count() == 0


def test_staff_owner_manages_members_in_the_inline(client, library):
    staff = staff_client(client, library["owner"])
    project = library["project"]
    memberships = list(project.memberships.order_by("pk"))
    data = {"name": project.name, "description": project.description,
            "memberships-TOTAL_FORMS": str(len(memberships)), "memberships-INITIAL_FORMS": str(len(memberships)),
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
            "model_uploads": [library["model"].pk], "corpus_uploads": [library["corpus"].pk],
            "test_set_uploads": [library["test_set"].pk]}
    for index, membership in enumerate(memberships):
        role = Role.EDITOR if membership.user == library["viewer"] else membership.role
        data.update({f"memberships-{index}-id": membership.pk, f"memberships-{index}-project": project.pk,
                     f"memberships-{index}-user": membership.user_id, f"memberships-{index}-role": role})
    response = staff.post(_admin_url(Project, "change", project.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert project.memberships.get(user=library["viewer"]).role == Role.EDITOR
