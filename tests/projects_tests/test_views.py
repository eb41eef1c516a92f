"""HTML views: the owner / editor / viewer / stranger / anonymous matrix for every page, htmx partials, and
upload refusals shown inline."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from projects import services
from projects.models import Membership, Project, Role, TestSetUpload
from tests.factories import UserFactory
from tests.support.upload_files import folder_entries, zip_of

pytestmark = pytest.mark.django_db

ROLES = ("owner", "editor", "viewer", "stranger", "anonymous")
MEMBERS = {"owner", "editor", "viewer"}
WRITERS = {"owner", "editor"}
OWNERS = {"owner"}
EVERYONE_SIGNED_IN = {"owner", "editor", "viewer", "stranger"}


@pytest.fixture
def world(people, storage_root):
    """``people`` plus: a test set of the editor's attached to the project, and the owner's own test set."""
    project = people["project"]
    attached = services.create_test_set_upload(people["editor"], file=SimpleUploadedFile("e.txt", b"e .\n"),
                                               name="Eddie's sentences")
    services.attach_upload(people["editor"], project, attached)
    owners = services.create_test_set_upload(people["owner"], file=SimpleUploadedFile("o.txt", b"o .\n"),
                                             name="Olivia's sentences")
    Membership.objects.create(project=project, user=UserFactory(username="walt"), role=Role.VIEWER)
    return {**people, "attached": attached, "owners_upload": owners}


def _membership(world, username):
    return world["project"].memberships.get(user__username=username).pk


# (name, method, url(world), data(world), roles allowed); allowed roles get 200/204/302, members that are not
# allowed get 403, strangers 404 on project pages, anonymous users the login page.
ENDPOINTS = [
    ("list", "get", lambda w: reverse("projects:list"), None, EVERYONE_SIGNED_IN),
    ("create", "post", lambda w: reverse("projects:list"), lambda w: {"name": "New"}, EVERYONE_SIGNED_IN),
    ("detail", "get", lambda w: reverse("projects:detail", args=[w["project"].pk]), None, MEMBERS),
    ("edit-form", "get", lambda w: reverse("projects:edit", args=[w["project"].pk]), None, WRITERS),
    ("edit", "post", lambda w: reverse("projects:edit", args=[w["project"].pk]),
     lambda w: {"name": "Renamed", "description": ""}, WRITERS),
    ("delete", "post", lambda w: reverse("projects:delete", args=[w["project"].pk]), None, OWNERS),
    ("members", "get", lambda w: reverse("projects:members", args=[w["project"].pk]), None, MEMBERS),
    ("add-member", "post", lambda w: reverse("projects:members", args=[w["project"].pk]),
     lambda w: {"user": "sam", "role": "viewer"}, OWNERS),
    ("member-role", "post", lambda w: reverse("projects:member-role", args=[w["project"].pk,
                                                                            _membership(w, "vera")]),
     lambda w: {"role": "editor"}, OWNERS),
    ("member-remove", "post", lambda w: reverse("projects:member-remove", args=[w["project"].pk,
                                                                                _membership(w, "walt")]),
     None, OWNERS),
    ("attach", "post", lambda w: reverse("projects:attach", args=[w["project"].pk]),
     lambda w: {"kind": "test_set", "upload": w["attached"].pk}, {"editor"}),  # only its uploader attaches it
    ("detach", "post", lambda w: reverse("projects:detach", args=[w["project"].pk, "test_set", w["attached"].pk]),
     None, WRITERS),
    ("project-upload-form", "get", lambda w: reverse("projects:project-upload", args=[w["project"].pk, "corpus"]),
     None, WRITERS),
    ("project-upload", "post", lambda w: reverse("projects:project-upload", args=[w["project"].pk, "test_set"]),
     lambda w: {"file": SimpleUploadedFile("new.txt", b"a new sentence .\n")}, WRITERS),
    ("library", "get", lambda w: reverse("projects:library"), None, EVERYONE_SIGNED_IN),
    ("upload-form", "get", lambda w: reverse("projects:upload", args=["model"]), None, EVERYONE_SIGNED_IN),
    ("upload-detail", "get", lambda w: reverse("projects:upload-detail", args=["test_set", w["attached"].pk]),
     None, MEMBERS),
    ("upload-delete", "post", lambda w: reverse("projects:upload-delete", args=["test_set", w["attached"].pk]),
     None, {"editor"}),
]


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("name, method, url, data, allowed", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_permission_matrix(client, world, who, name, method, url, data, allowed):
    if who != "anonymous":
        client.force_login(world[who])
    target = url(world)
    response = getattr(client, method)(target, data(world) if data else {})
    if who == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    elif who in allowed:
        assert response.status_code in (200, 204, 302), response.content[:500]
    elif who in MEMBERS or name.startswith("upload-"):
        # members without the role get 403; an upload seen through a project but not owned is 403 to delete
        expected = 404 if (who == "stranger") else 403
        assert response.status_code == expected
    else:
        assert response.status_code == 404


def test_write_effects_happen_only_when_allowed(client, world):
    client.force_login(world["viewer"])
    client.post(reverse("projects:edit", args=[world["project"].pk]), {"name": "Hijacked"})
    client.post(reverse("projects:members", args=[world["project"].pk]), {"user": "sam", "role": "owner"})
    client.post(reverse("projects:delete", args=[world["project"].pk]))
    project = Project.objects.get()
    assert project.name == "Probing MiniLM"
    assert not Membership.objects.filter(user=world["stranger"]).exists()


def test_project_list_and_create(client, people):
    client.force_login(people["stranger"])
    page = client.get(reverse("projects:list")).content.decode()
    assert "Probing MiniLM" not in page
    response = client.post(reverse("projects:list"), {"name": "Sam's project", "description": ""})
    project = Project.objects.get(name="Sam's project")
    assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
    page = client.get(project.get_absolute_url()).content.decode()
    assert "Sam&#x27;s project" in page and 'id="sidebar-projects"' in page


def test_htmx_create_with_error_returns_the_form_partial(client, people):
    client.force_login(people["owner"])
    response = client.post(reverse("projects:list"), {"name": ""}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section aria-labelledby="new-project-heading"')
    assert "This field is required." in body and "<html" not in body


def test_htmx_create_success_redirects(client, people):
    client.force_login(people["owner"])
    response = client.post(reverse("projects:list"), {"name": "Via htmx"}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == Project.objects.get(name="Via htmx").get_absolute_url()


def test_members_page_add_change_remove(client, people):
    project = people["project"]
    client.force_login(people["owner"])
    url = reverse("projects:members", args=[project.pk])
    response = client.post(url, {"user": "sam@example.org", "role": "editor"}, headers={"HX-Request": "true"})
    assert response.status_code == 200 and 'id="members-panel"' in response.content.decode()
    membership = project.memberships.get(user=people["stranger"])
    assert membership.role == Role.EDITOR
    client.post(reverse("projects:member-role", args=[project.pk, membership.pk]), {"role": "viewer"})
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    response = client.post(url, {"user": "nobody@example.org", "role": "viewer"})
    assert "No single user has the username or e-mail" in response.content.decode()
    client.post(reverse("projects:member-remove", args=[project.pk, membership.pk]))
    assert not project.memberships.filter(user=people["stranger"]).exists()


def test_detail_shows_members_and_attached_uploads(client, world):
    client.force_login(world["viewer"])
    page = client.get(world["project"].get_absolute_url()).content.decode()
    assert "Eddie&#x27;s sentences" in page and "eddie" in page and "olivia" in page
    assert "Remove from project" not in page and "Delete project" not in page  # viewer sees no write controls
    client.force_login(world["owner"])
    page = client.get(world["project"].get_absolute_url()).content.decode()
    assert "Olivia&#x27;s sentences" in page  # offered to add from her library
    assert "Delete project" in page and 'hx-post="' in page


def test_attach_via_htmx_returns_the_uploads_panel(client, world):
    client.force_login(world["owner"])
    response = client.post(reverse("projects:attach", args=[world["project"].pk]),
                           {"kind": "test_set", "upload": world["owners_upload"].pk}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section aria-labelledby="uploads-heading" id="uploads-panel"')
    assert world["project"].test_set_uploads.count() == 2


def test_editor_cannot_attach_someone_elses_private_upload(client, world):
    client.force_login(world["editor"])
    response = client.post(reverse("projects:attach", args=[world["project"].pk]),
                           {"kind": "test_set", "upload": world["owners_upload"].pk})
    assert response.status_code == 404
    assert world["project"].test_set_uploads.count() == 1


def test_upload_refusal_is_shown_inline(client, people, assert_nothing_left):
    client.force_login(people["owner"])
    url = reverse("projects:upload", args=["corpus"])
    response = client.post(url, {
        "format": "plain", "file": SimpleUploadedFile("c.word", b"a b\nc d e\n"),
        "label_file": SimpleUploadedFile("c.label", b"X Y\nX Y\n"),
    }, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<form id="upload-form"')
    assert "c.label, line 2: count mismatch on line 2: 3 words, 2 labels" in body
    assert 'class="error" role="alert"' in body
    assert_nothing_left(people["owner"])


def test_model_upload_through_the_page(client, people, tiny_model_dir, storage_root):
    client.force_login(people["owner"])
    archive = SimpleUploadedFile("tiny.zip", zip_of(folder_entries(tiny_model_dir)))
    response = client.post(reverse("projects:project-upload", args=[people["project"].pk, "model"]),
                           {"files": [archive], "name": "Tiny"})
    assert response.status_code == 302 and response["Location"] == people["project"].get_absolute_url()
    page = client.get(people["project"].get_absolute_url()).content.decode()
    assert "Tiny" in page and "BertModel" in page and "2 layers × 16" in page


def test_model_upload_of_separate_files_through_the_page(client, people, tiny_model_dir, storage_root):
    client.force_login(people["owner"])
    files = [SimpleUploadedFile(n, d) for n, d in folder_entries(tiny_model_dir).items()]
    response = client.post(reverse("projects:upload", args=["model"]), {"files": files})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "model.safetensors" in page and "vocab.txt" in page


def test_pickle_refusal_through_the_page(client, people, tiny_model_dir, assert_nothing_left):
    client.force_login(people["owner"])
    files = [SimpleUploadedFile("config.json", (tiny_model_dir / "config.json").read_bytes()),
             SimpleUploadedFile("pytorch_model.bin", b"\x80\x04")]
    response = client.post(reverse("projects:upload", args=["model"]), {"files": files})
    assert response.status_code == 200
    assert "pytorch_model.bin: pickle-based weight files" in response.content.decode()
    assert_nothing_left(people["owner"])


def test_conllu_feats_label_column(client, people, storage_root):
    client.force_login(people["owner"])
    data = b"1\tDogs\tdog\tNOUN\tNNS\tNumber=Plur\t2\tnsubj\t_\t_\n2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_\n"
    response = client.post(reverse("projects:upload", args=["corpus"]), {
        "format": "conllu", "label_column": "feats", "feats_key": "Number", "file": SimpleUploadedFile("d.conllu", data),
    })
    assert response.status_code == 302
    upload = people["owner"].corpusuploads.get()
    assert upload.label_column == "feats:Number" and upload.metadata["labels"] == {"Plur": 1}


def test_delete_upload_through_the_page(client, world, django_capture_on_commit_callbacks):
    client.force_login(world["editor"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("projects:upload-delete", args=["test_set", world["attached"].pk]))
    assert response.status_code == 302 and response["Location"] == reverse("projects:library")
    assert not TestSetUpload.objects.filter(pk=world["attached"].pk).exists()


def test_unknown_upload_kind_is_404(client, people):
    client.force_login(people["owner"])
    assert client.get(reverse("projects:upload", args=["weights"])).status_code == 404


@pytest.mark.parametrize("next_url,lands_on", [("/projects/{pk}/runs/new/", "next"), ("https://elsewhere.example/", "project"),
                                               ("//elsewhere.example/x", "project")])
def test_an_upload_into_a_project_returns_to_a_page_of_this_site_it_came_from(client, people, next_url, lands_on,
                                                                            storage_root):
    """The new-analysis form links to the upload pages with ?next= so a researcher comes back to it; another
    site's address is never followed."""
    client.force_login(people["owner"])
    target = next_url.format(pk=people["project"].pk)
    response = client.post(reverse("projects:project-upload", args=[people["project"].pk, "test_set"]) + "?next="
                           + target, {"file": SimpleUploadedFile("new.txt", b"a new sentence .\n")})
    expected = target if lands_on == "next" else people["project"].get_absolute_url()
    assert response.status_code == 302 and response["Location"] == expected
