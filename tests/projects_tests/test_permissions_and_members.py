"""The permission path (selectors), project and membership services, attachments, and archive byte counting."""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from projects import selectors, services, uploads
from projects.models import Membership, Project, Role
from tests.factories import UserFactory
from tests.support.upload_files import uploaded

pytestmark = pytest.mark.django_db


def test_create_project_makes_the_creator_owner(db):
    user = UserFactory()
    project = services.create_project(user, name="  NMT neurons ", description="x")
    assert project.name == "NMT neurons" and project.owner == user
    assert selectors.role_of(user, project) == Role.OWNER
    assert list(selectors.projects_visible_to(user)) == [project]


def test_project_needs_a_name(db):
    with pytest.raises(ValidationError):
        services.create_project(UserFactory(), name="   ")


def test_visibility(people):
    project = people["project"]
    for who in ("owner", "editor", "viewer"):
        assert list(selectors.projects_visible_to(people[who])) == [project]
    assert list(selectors.projects_visible_to(people["stranger"])) == []
    assert list(selectors.projects_visible_to(AnonymousUser())) == []


@pytest.mark.parametrize("who, write, manage, outcome", [
    ("owner", True, True, "ok"),
    ("editor", True, False, "ok"),
    ("editor", False, True, PermissionDenied),
    ("viewer", False, False, "ok"),
    ("viewer", True, False, PermissionDenied),
    ("stranger", False, False, Http404),
    ("anonymous", False, False, Http404),
])
def test_project_for(people, who, write, manage, outcome):
    user = AnonymousUser() if who == "anonymous" else people[who]
    if outcome == "ok":
        assert selectors.project_for(user, people["project"].pk, write=write, manage=manage) == people["project"]
    else:
        with pytest.raises(outcome):
            selectors.project_for(user, people["project"].pk, write=write, manage=manage)


def test_project_for_unknown_and_malformed_ids(people):
    with pytest.raises(Http404):
        selectors.project_for(people["owner"], 999_999)
    with pytest.raises(Http404):
        selectors.project_for(people["owner"], "abc")


def test_add_member_by_username_or_email(people):
    project, owner = people["project"], people["owner"]
    UserFactory(username="grace", email="Grace@Example.org")
    UserFactory(username="alan")
    assert services.add_member(owner, project, "ALAN", Role.EDITOR).role == Role.EDITOR
    assert services.add_member(owner, project, "grace@example.org").user.username == "grace"
    assert selectors.role_of(Membership.objects.get(user__username="grace").user, project) == Role.VIEWER


def test_add_member_refusals(people):
    project, owner = people["project"], people["owner"]
    with pytest.raises(ValidationError, match="No single user"):
        services.add_member(owner, project, "nobody")
    with pytest.raises(ValidationError, match="already a member"):
        services.add_member(owner, project, "vera")
    with pytest.raises(ValidationError, match="Unknown role"):
        services.add_member(owner, project, "sam", "admin")
    for who in ("editor", "viewer"):
        with pytest.raises(PermissionDenied):
            services.add_member(people[who], project, "sam")
    assert not project.memberships.filter(user=people["stranger"]).exists()


def test_change_role_and_the_creator_stays_owner(people):
    project, owner = people["project"], people["owner"]
    viewer_membership = project.memberships.get(user=people["viewer"])
    services.change_role(owner, viewer_membership, Role.OWNER)
    assert selectors.can_manage(people["viewer"], project)
    with pytest.raises(ValidationError, match="always stays an owner"):
        services.change_role(people["viewer"], project.memberships.get(user=owner), Role.VIEWER)
    with pytest.raises(PermissionDenied):
        services.change_role(people["editor"], viewer_membership, Role.VIEWER)


def test_remove_member_and_leave(people):
    project = people["project"]
    with pytest.raises(PermissionDenied):
        services.remove_member(people["editor"], project.memberships.get(user=people["viewer"]))
    services.remove_member(people["viewer"], project.memberships.get(user=people["viewer"]))  # leaving
    services.remove_member(people["owner"], project.memberships.get(user=people["editor"]))
    with pytest.raises(ValidationError, match="cannot be removed"):
        services.remove_member(people["owner"], project.memberships.get(user=people["owner"]))
    assert list(project.memberships.values_list("user__username", flat=True)) == ["olivia"]


def test_delete_project_owner_only(people):
    project = people["project"]
    with pytest.raises(PermissionDenied):
        services.delete_project(people["editor"], project)
    services.delete_project(people["owner"], project)
    assert not Project.objects.exists()


# ---------------------------------------------------------------------------------------------- uploads and projects


@pytest.fixture
def test_set_of(storage_root):
    def make(user, name="s.txt"):
        return services.create_test_set_upload(user, file=uploaded(name, b"a sentence .\n"))

    return make


def test_attach_and_visibility_of_uploads(people, test_set_of):
    project = people["project"]
    eddies = test_set_of(people["editor"])
    assert list(selectors.uploads_visible_to(people["viewer"], "test_set")) == []
    services.attach_upload(people["editor"], project, eddies)
    for who in ("owner", "editor", "viewer"):
        assert list(selectors.uploads_visible_to(people[who], "test_set")) == [eddies]
    assert list(selectors.uploads_visible_to(people["stranger"], "test_set")) == []
    assert selectors.library_of(people["owner"], "test_set").count() == 0  # not in her library, not her quota
    with pytest.raises(PermissionDenied):  # seen through the project, but not hers to delete
        selectors.upload_for(people["owner"], "test_set", eddies.pk, own=True)
    with pytest.raises(Http404):
        selectors.upload_for(people["stranger"], "test_set", eddies.pk)


def test_viewer_cannot_attach_and_nobody_attaches_a_strangers_upload(people, test_set_of):
    project = people["project"]
    with pytest.raises(PermissionDenied):
        services.attach_upload(people["viewer"], project, test_set_of(people["viewer"]))
    with pytest.raises(PermissionDenied):
        services.attach_upload(people["owner"], project, test_set_of(people["stranger"], "t.txt"))
    assert project.test_set_uploads.count() == 0


def test_a_member_cannot_carry_a_shared_upload_into_another_project(people, test_set_of, client):
    """The re-sharing leak: a viewer of P put the owner's upload into a project Q of her own, added a friend,
    and both kept reading it after the owner removed her from P. Only an upload's owner attaches it, through
    the service, the HTML form and the API alike; so leaving P ends her access."""
    from rest_framework.test import APIClient

    project, owner, viewer = people["project"], people["owner"], people["viewer"]
    upload = test_set_of(owner)
    services.attach_upload(owner, project, upload)
    own_project = services.create_project(viewer, name="Vera's")
    services.add_member(viewer, own_project, people["stranger"].username)
    assert selectors.upload_for(viewer, "test_set", upload.pk) == upload  # she may use it inside P

    with pytest.raises(PermissionDenied, match="Only the person who uploaded this"):
        services.attach_upload(viewer, own_project, upload)
    client.force_login(viewer)
    page = client.post(f"/projects/{own_project.pk}/uploads/attach/", {"kind": "test_set", "upload": upload.pk})
    assert page.status_code == 403
    api = APIClient()
    api.force_authenticate(viewer)
    response = api.post(f"/api/v1/projects/{own_project.pk}/uploads/", {"kind": "test_set", "upload": upload.pk},
                        format="json")
    assert response.status_code == 403 and "Only the person who uploaded this" in response.json()["detail"]
    assert own_project.test_set_uploads.count() == 0
    detail = client.get(own_project.get_absolute_url()).content.decode()
    assert upload.name not in detail  # not even offered for attaching

    services.remove_member(owner, project.memberships.get(user=viewer))
    for who in (viewer, people["stranger"]):
        assert list(selectors.uploads_visible_to(who, "test_set")) == []
        with pytest.raises(Http404):
            selectors.upload_for(who, "test_set", upload.pk)


def test_one_upload_in_two_projects(people, test_set_of):
    owner = people["owner"]
    other = services.create_project(owner, name="Second")
    upload = test_set_of(owner)
    services.attach_upload(owner, people["project"], upload)
    services.attach_upload(owner, other, upload)
    assert set(upload.projects.all()) == {people["project"], other}
    services.detach_upload(owner, other, upload)
    assert list(upload.projects.all()) == [people["project"]]


# ---------------------------------------------------------------------------------------------- archive counting


def test_unpack_counts_bytes_beyond_the_declared_size(tmp_path):
    """An entry that yields more bytes than its header declared is refused while unpacking."""
    entry = uploads._Entry(PurePosixPath("model.safetensors"), False, declared_size=10, handle=None)
    with pytest.raises(uploads.UploadRefused, match="unpacks to more than 1,000 bytes"):
        uploads._unpack([entry], lambda e: io.BytesIO(b"\0" * 5_000), tmp_path / "out", "m.zip", max_bytes=1_000)


@pytest.mark.parametrize("name, expected", [
    ("a/b.json", "a/b.json"), ("./a//b.json", "a/b.json"), ("a\\b.json", "a/b.json"), ("./", None),
])
def test_safe_relative_path_normalises(name, expected):
    path = uploads.safe_relative_path(name, "m.zip")
    assert (path.as_posix() if path else None) == expected


@pytest.mark.parametrize("name", ["..\\x", "C:\\Windows\\x", "a/../../b", "\\server\\share"])
def test_safe_relative_path_refuses(name):
    with pytest.raises(uploads.UploadRefused):
        uploads.safe_relative_path(name, "m.zip")
