"""REST API for projects, memberships, attached uploads and the upload library.

The owner / editor / viewer / stranger / anonymous matrix for every endpoint (signed-in requests use real API
tokens), session auth with CSRF, multipart uploads of a tiny safetensors model and of CoNLL-U / plain corpora,
refusals that carry the service's message and leave nothing behind, filtering, pagination and throttling.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.pagination import PageNumberPagination
from rest_framework.settings import api_settings
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.services import create_token, revoke_token
from projects import services
from projects.models import CorpusUpload, Membership, ModelUpload, Project, Role, TestSetUpload
from tests.assets import UD_DEV
from tests.factories import ProjectFactory, UserFactory
from tests.support.upload_files import folder_entries, zip_of

pytestmark = pytest.mark.django_db

ROLES = ("owner", "editor", "viewer", "stranger", "anonymous")
EVERYONE_SIGNED_IN = {"owner", "editor", "viewer", "stranger"}
MEMBERS = {"owner", "editor", "viewer"}
WRITERS = {"owner", "editor"}
OWNERS = {"owner"}
UPLOADER = {"editor"}  # the attached upload in ``world`` is the editor's


def token_client(user) -> APIClient:
    """A client that authenticates with a real personal API token of ``user``."""
    _, secret = create_token(user, "tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


def client_for(world, who: str) -> APIClient:
    return APIClient() if who == "anonymous" else token_client(world[who])


def make_test_set(user, name="sentences", text=b"A sentence .\nAnother one .\n"):
    return services.create_test_set_upload(user, file=SimpleUploadedFile(f"{user.username}.txt", text), name=name)


@pytest.fixture
def world(people, storage_root):
    """``people`` plus: the editor's test set attached to the project, and walt, a second viewer."""
    project = people["project"]
    attached = make_test_set(people["editor"], name="Eddie's sentences")
    services.attach_upload(people["editor"], project, attached)
    walt = Membership.objects.create(project=project, user=UserFactory(username="walt"), role=Role.VIEWER)
    return {**people, "attached": attached, "walt": walt}


def _own_test_set_id(world, who):
    return make_test_set(world[who], name=f"{who}'s own").pk if who in world else 1


# (name, method, url(world), data(world, who), who may do it, status on success)
ENDPOINTS = [
    ("project list", "get", lambda w: "/api/v1/projects/", None, EVERYONE_SIGNED_IN, 200),
    ("project create", "post", lambda w: "/api/v1/projects/", lambda w, who: {"name": "New"}, EVERYONE_SIGNED_IN,
     201),
    ("project detail", "get", lambda w: f"/api/v1/projects/{w['project'].pk}/", None, MEMBERS, 200),
    ("project patch", "patch", lambda w: f"/api/v1/projects/{w['project'].pk}/",
     lambda w, who: {"description": "changed"}, WRITERS, 200),
    ("project put", "put", lambda w: f"/api/v1/projects/{w['project'].pk}/",
     lambda w, who: {"name": "Renamed", "description": "x"}, WRITERS, 200),
    ("project delete", "delete", lambda w: f"/api/v1/projects/{w['project'].pk}/", None, OWNERS, 204),
    ("member list", "get", lambda w: f"/api/v1/projects/{w['project'].pk}/memberships/", None, MEMBERS, 200),
    ("member detail", "get", lambda w: f"/api/v1/projects/{w['project'].pk}/memberships/{w['walt'].pk}/", None,
     MEMBERS, 200),
    ("member add", "post", lambda w: f"/api/v1/projects/{w['project'].pk}/memberships/",
     lambda w, who: {"user": "newcomer@example.org", "role": "editor"}, OWNERS, 201),
    ("member role", "patch", lambda w: f"/api/v1/projects/{w['project'].pk}/memberships/{w['walt'].pk}/",
     lambda w, who: {"role": "editor"}, OWNERS, 200),
    ("member remove", "delete", lambda w: f"/api/v1/projects/{w['project'].pk}/memberships/{w['walt'].pk}/", None,
     OWNERS, 204),
    ("attached list", "get", lambda w: f"/api/v1/projects/{w['project'].pk}/uploads/", None, MEMBERS, 200),
    ("attach", "post", lambda w: f"/api/v1/projects/{w['project'].pk}/uploads/",
     lambda w, who: {"kind": "test_set", "upload": _own_test_set_id(w, who)}, WRITERS, 201),
    ("detach", "delete", lambda w: f"/api/v1/projects/{w['project'].pk}/uploads/test_set/{w['attached'].pk}/", None,
     WRITERS, 204),
    ("model list", "get", lambda w: "/api/v1/uploads/models/", None, EVERYONE_SIGNED_IN, 200),
    ("corpus list", "get", lambda w: "/api/v1/uploads/corpora/", None, EVERYONE_SIGNED_IN, 200),
    ("test set list", "get", lambda w: "/api/v1/uploads/test-sets/", None, EVERYONE_SIGNED_IN, 200),
]


def _expected(who, allowed, success, can_see):
    if who == "anonymous":
        return 401
    if who in allowed:
        return success
    return 403 if can_see else 404


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("name,method,url,data,allowed,success", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_permission_matrix(world, who, name, method, url, data, allowed, success):
    UserFactory(username="newcomer")
    client = client_for(world, who)
    body = data(world, who) if data else None
    response = getattr(client, method)(url(world), body, format="json")
    # members see the project and its attached upload; a stranger sees neither
    expected = _expected(who, allowed, success, can_see=who in MEMBERS)
    assert response.status_code == expected, response.content
    if expected in (401, 403, 404):
        assert "detail" in response.json()


KIND_PATHS = {"model": "models", "corpus": "corpora", "test_set": "test-sets"}


@pytest.fixture(scope="module")
def tiny_model_zip(tiny_model_dir) -> bytes:
    return zip_of(folder_entries(tiny_model_dir))


def upload_payload(kind: str, tiny_model_zip: bytes) -> dict:
    """A small valid multipart body for each kind of upload."""
    if kind == "model":
        return {"files": SimpleUploadedFile("tiny.zip", tiny_model_zip)}
    if kind == "corpus":
        return {"format": "plain", "file": SimpleUploadedFile("c.word", b"The cat .\n"),
                "label_file": SimpleUploadedFile("c.label", b"DT NN .\n")}
    return {"file": SimpleUploadedFile("s.txt", b"Hello .\n")}


@pytest.fixture(params=list(KIND_PATHS))
def library_world(request, people, storage_root, tiny_model_zip):
    """``people`` plus one upload of the parametrised kind, the editor's, attached to the project."""
    kind = request.param
    payload = upload_payload(kind, tiny_model_zip)
    editor = people["editor"]
    if kind == "model":
        upload = services.create_model_upload(editor, files=[payload["files"]])
    elif kind == "corpus":
        upload = services.create_corpus_upload(editor, **payload)
    else:
        upload = services.create_test_set_upload(editor, **payload)
    services.attach_upload(editor, people["project"], upload)
    return {**people, "kind": kind, "upload": upload, "payload": lambda: upload_payload(kind, tiny_model_zip)}


# (name, method, url(kind path, upload), body(world), who may do it, status on success)
LIBRARY_ENDPOINTS = [
    ("list", "get", lambda path, upload: f"/api/v1/uploads/{path}/", None, EVERYONE_SIGNED_IN, 200),
    ("detail", "get", lambda path, upload: f"/api/v1/uploads/{path}/{upload.pk}/", None, MEMBERS, 200),
    ("rename", "patch", lambda path, upload: f"/api/v1/uploads/{path}/{upload.pk}/",
     lambda w: {"name": "Renamed"}, UPLOADER, 200),
    ("delete", "delete", lambda path, upload: f"/api/v1/uploads/{path}/{upload.pk}/", None, UPLOADER, 204),
    ("upload", "post", lambda path, upload: f"/api/v1/uploads/{path}/", lambda w: w["payload"](),
     EVERYONE_SIGNED_IN, 201),
]


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("name,method,url,data,allowed,success", LIBRARY_ENDPOINTS,
                         ids=[e[0] for e in LIBRARY_ENDPOINTS])
def test_library_permission_matrix(library_world, who, name, method, url, data, allowed, success):
    """Members see an upload through the project; only the person who uploaded it renames or deletes it."""
    world = library_world
    client = client_for(world, who)
    body = data(world) if data else None
    fmt = "multipart" if method == "post" else "json"
    response = getattr(client, method)(url(KIND_PATHS[world["kind"]], world["upload"]), body, format=fmt)
    expected = _expected(who, allowed, success, can_see=who in MEMBERS)
    assert response.status_code == expected, response.content
    if expected in (401, 403, 404):
        assert "detail" in response.json()
    if name == "list" and who in MEMBERS:
        assert [u["id"] for u in response.json()["results"]] == [world["upload"].pk]
    if name == "list" and who == "stranger":
        assert response.json()["results"] == []


def test_refused_writes_change_nothing(world):
    project, walt, attached = world["project"], world["walt"], world["attached"]
    for who in ("viewer", "stranger"):
        client = token_client(world[who])
        client.patch(f"/api/v1/projects/{project.pk}/", {"name": "Hijacked"}, format="json")
        client.delete(f"/api/v1/projects/{project.pk}/")
        client.patch(f"/api/v1/projects/{project.pk}/memberships/{walt.pk}/", {"role": "owner"}, format="json")
        client.delete(f"/api/v1/projects/{project.pk}/uploads/test_set/{attached.pk}/")
        client.delete(f"/api/v1/uploads/test-sets/{attached.pk}/")
    project.refresh_from_db()
    walt.refresh_from_db()
    assert project.name == "Probing MiniLM"
    assert walt.role == Role.VIEWER
    assert list(project.test_set_uploads.all()) == [attached]
    assert TestSetUpload.objects.filter(pk=attached.pk).exists()


def test_403_and_404_carry_the_selectors_messages(world):
    viewer = token_client(world["viewer"])
    response = viewer.patch(f"/api/v1/projects/{world['project'].pk}/", {"name": "x"}, format="json")
    assert response.json() == {"detail": "Viewers cannot change this project; ask an owner for the editor role.",
                               "code": "permission_denied"}
    stranger = token_client(world["stranger"])
    assert stranger.get(f"/api/v1/projects/{world['project'].pk}/").json() == {"detail": "No such project.",
                                                                             "code": "not_found"}


def test_allowed_writes_take_effect(world):
    project, walt = world["project"], world["walt"]
    owner = token_client(world["owner"])
    UserFactory(username="newcomer", email="new.comer@example.org")

    added = owner.post(f"/api/v1/projects/{project.pk}/memberships/", {"user": "NEW.COMER@example.org",
                                                                        "role": "editor"}, format="json")
    assert added.status_code == 201
    assert added.json()["user"]["username"] == "newcomer" and added.json()["role"] == "editor"
    assert owner.patch(f"/api/v1/projects/{project.pk}/memberships/{walt.pk}/", {"role": "editor"},
                       format="json").json()["role"] == "editor"
    walt.refresh_from_db()
    assert walt.role == Role.EDITOR

    editor = token_client(world["editor"])
    patched = editor.patch(f"/api/v1/projects/{project.pk}/", {"description": "About MiniLM"}, format="json")
    assert patched.json()["description"] == "About MiniLM" and patched.json()["role"] == "editor"
    assert editor.delete(f"/api/v1/projects/{project.pk}/uploads/test_set/{world['attached'].pk}/").status_code == 204
    assert project.test_set_uploads.count() == 0
    assert TestSetUpload.objects.filter(pk=world["attached"].pk).exists()  # stays in the library

    assert owner.delete(f"/api/v1/projects/{project.pk}/").status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()


def test_project_create_makes_the_caller_owner(world):
    response = token_client(world["stranger"]).post("/api/v1/projects/", {"name": "  Mine  ", "description": "d"},
                                                    format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Mine" and body["owner"] == "sam" and body["role"] == "owner"
    assert Membership.objects.get(project_id=body["id"], user=world["stranger"]).role == Role.OWNER


def test_service_validation_messages_come_back_as_field_errors(world):
    owner = token_client(world["owner"])
    project = world["project"]
    assert owner.post("/api/v1/projects/", {"name": "   "}, format="json").json() == {
        "detail": "name: A project needs a name.", "code": "invalid", "fields": {"name": ["A project needs a name."]}}
    members = f"/api/v1/projects/{project.pk}/memberships/"
    assert owner.post(members, {"user": "nobody"}, format="json").json()["fields"] == {
        "user": ["No single user has the username or e-mail “nobody”."]}
    assert owner.post(members, {"user": "vera"}, format="json").json()["fields"] == {
        "user": ["vera is already a member of this project."]}
    creator = project.memberships.get(user=world["owner"])
    response = owner.patch(f"{members}{creator.pk}/", {"role": "viewer"}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"role": ["The person who created the project always stays an owner."]}
    response = owner.delete(f"{members}{creator.pk}/")
    assert response.status_code == 400
    assert response.json() == {"detail": "The person who created the project cannot be removed from it.",
                               "code": "invalid"}
    assert owner.patch(f"{members}{creator.pk}/", {"role": "boss"}, format="json").status_code == 400


def test_a_viewer_may_leave_a_project(world):
    viewer = world["viewer"]
    mine = world["project"].memberships.get(user=viewer)
    response = token_client(viewer).delete(f"/api/v1/projects/{world['project'].pk}/memberships/{mine.pk}/")
    assert response.status_code == 204
    assert not Membership.objects.filter(pk=mine.pk).exists()


def test_attach_needs_sight_of_the_upload(world):
    """An editor cannot attach someone else's private upload: it does not exist for them."""
    private = make_test_set(world["stranger"], name="Sam's private")
    response = token_client(world["editor"]).post(f"/api/v1/projects/{world['project'].pk}/uploads/",
                                                  {"kind": "test_set", "upload": private.pk}, format="json")
    assert response.status_code == 404
    assert world["project"].test_set_uploads.filter(pk=private.pk).count() == 0


def test_detach_of_an_unknown_kind_or_unattached_upload_is_404(world):
    owner = token_client(world["owner"])
    base = f"/api/v1/projects/{world['project'].pk}/uploads/"
    assert owner.delete(f"{base}tokenizer/{world['attached'].pk}/").status_code == 404
    assert owner.delete(f"{base}model/{world['attached'].pk}/").status_code == 404


def test_attached_list_names_kind_and_owner(world):
    body = token_client(world["viewer"]).get(f"/api/v1/projects/{world['project'].pk}/uploads/").json()
    assert [(item["kind"], item["id"], item["owner"]) for item in body] == [
        ("test_set", world["attached"].pk, "eddie")]


# ---------------------------------------------------------------------------------------------- auth


def test_token_from_the_accounts_endpoint_authenticates(people):
    session = APIClient()
    session.force_login(people["owner"])
    created = session.post("/api/v1/tokens/", {"name": "script"}, format="json")
    assert created.status_code == 201
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {created.json()['secret']}")
    response = client.get("/api/v1/projects/")
    assert response.status_code == 200
    assert [p["name"] for p in response.json()["results"]] == ["Probing MiniLM"]


def test_revoked_token_gets_401(people):
    token, secret = create_token(people["owner"], "old")
    revoke_token(token)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    assert client.get(f"/api/v1/projects/{people['project'].pk}/").status_code == 401


def test_session_auth_works_and_enforces_csrf(people):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people["owner"])
    assert client.get(f"/api/v1/projects/{people['project'].pk}/").json()["role"] == "owner"
    refused = client.post("/api/v1/projects/", {"name": "No CSRF"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    client.get("/accounts/login/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    created = client.post("/api/v1/projects/", {"name": "With CSRF"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert created.status_code == 201


# ---------------------------------------------------------------------------------------------- listing


@pytest.fixture
def many_projects(people):
    owner = people["owner"]
    for name, description in [("Alpha probes", "POS"), ("Beta ablation", "about MiniLM"), ("Gamma", "x")]:
        ProjectFactory(owner=owner, name=name, description=description)
    other = ProjectFactory(owner=people["stranger"], name="Alpha of someone else")
    Membership.objects.create(project=other, user=owner, role=Role.VIEWER)
    ProjectFactory(owner=people["stranger"], name="Alpha private")
    return people


def _names(response):
    assert response.status_code == 200, response.content
    return [project["name"] for project in response.json()["results"]]


def test_project_list_filters_searches_orders(many_projects):
    client = token_client(many_projects["owner"])
    assert _names(client.get("/api/v1/projects/")) == [
        "Alpha of someone else", "Alpha probes", "Beta ablation", "Gamma", "Probing MiniLM"]
    assert _names(client.get("/api/v1/projects/?name=alpha")) == ["Alpha of someone else", "Alpha probes"]
    assert _names(client.get("/api/v1/projects/?owner=sam")) == ["Alpha of someone else"]
    assert _names(client.get("/api/v1/projects/?role=viewer")) == ["Alpha of someone else"]
    assert _names(client.get("/api/v1/projects/?search=minilm")) == ["Beta ablation", "Probing MiniLM"]
    assert _names(client.get("/api/v1/projects/?ordering=-name")) == [
        "Probing MiniLM", "Gamma", "Beta ablation", "Alpha probes", "Alpha of someone else"]
    roles = {p["name"]: p["role"] for p in client.get("/api/v1/projects/").json()["results"]}
    assert roles["Alpha of someone else"] == "viewer" and roles["Gamma"] == "owner"


def test_project_list_is_paginated(many_projects, monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    client = token_client(many_projects["owner"])
    first = client.get("/api/v1/projects/").json()
    assert first["count"] == 5 and len(first["results"]) == 2 and first["previous"] is None
    last = client.get("/api/v1/projects/?page=3").json()
    assert [p["name"] for p in last["results"]] == ["Probing MiniLM"] and last["next"] is None
    assert client.get("/api/v1/projects/?page=4").status_code == 404


def test_upload_list_shows_own_and_shared_and_filters(world):
    mine = make_test_set(world["viewer"], name="Vera's corpus")
    make_test_set(world["stranger"], name="Sam's secret")
    client = token_client(world["viewer"])
    listed = client.get("/api/v1/uploads/test-sets/").json()
    assert {u["name"] for u in listed["results"]} == {"Vera's corpus", "Eddie's sentences"}
    assert [u["id"] for u in client.get("/api/v1/uploads/test-sets/?own=true").json()["results"]] == [mine.pk]
    assert [u["name"] for u in client.get("/api/v1/uploads/test-sets/?own=false").json()["results"]] == [
        "Eddie's sentences"]
    assert [u["name"] for u in client.get("/api/v1/uploads/test-sets/?search=eddie").json()["results"]] == [
        "Eddie's sentences"]


# ---------------------------------------------------------------------------------------------- uploads


def test_model_zip_upload_through_the_api(people, tiny_model_dir, storage_root):
    client = token_client(people["editor"])
    archive = SimpleUploadedFile("tiny.zip", zip_of(folder_entries(tiny_model_dir)))
    response = client.post("/api/v1/uploads/models/", {"files": archive, "name": "Tiny BERT"}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["model_type"], body["model_kind"], body["n_layers"], body["hidden_size"]) == (
        "Tiny BERT", "bert", "encoder", 2, 16)
    assert body["owner"] == "eddie" and len(body["sha256"]) == 64 and "model.safetensors" in body["files"]
    upload = ModelUpload.objects.get(pk=body["id"])
    assert default_storage.exists(upload.storage_name("model.safetensors"))

    attach = client.post(f"/api/v1/projects/{people['project'].pk}/uploads/", {"kind": "model", "upload": upload.pk},
                         format="json")
    assert attach.status_code == 201
    viewer_sees = token_client(people["viewer"]).get(f"/api/v1/uploads/models/{upload.pk}/")
    assert viewer_sees.status_code == 200 and viewer_sees.json()["n_parameters"] == upload.n_parameters


def test_model_upload_of_separate_files_through_the_api(people, tiny_model_dir, storage_root):
    files = [SimpleUploadedFile(name, data) for name, data in folder_entries(tiny_model_dir).items()]
    response = token_client(people["owner"]).post("/api/v1/uploads/models/", {"files": files}, format="multipart")
    assert response.status_code == 201, response.content
    assert set(response.json()["files"]) == set(folder_entries(tiny_model_dir))


def test_pickle_model_is_refused_with_the_reason_and_nothing_stored(people, tiny_model_dir, assert_nothing_left):
    entries = {**folder_entries(tiny_model_dir), "pytorch_model.bin": b"\x80\x04pickle"}
    archive = SimpleUploadedFile("tiny.zip", zip_of(entries))
    response = token_client(people["owner"]).post("/api/v1/uploads/models/", {"files": archive}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert "pytorch_model.bin" in body["detail"] and "arbitrary code" in body["detail"]
    assert "safe_serialization=True" in body["detail"]
    assert body["code"] in {"model", "archive"}
    assert_nothing_left(people["owner"])


def _ud_excerpt(sentences: int) -> bytes:
    """The first ``sentences`` sentences of the real UD EWT dev file (read, never copied into the repo)."""
    blocks = UD_DEV.read_text(encoding="utf-8").split("\n\n")[:sentences]
    return ("\n\n".join(blocks) + "\n\n").encode()


@pytest.mark.parametrize("label_column,labels", [("upos", "NOUN"), ("xpos", "NNP"), ("feats:Number", "Sing")])
def test_conllu_upload_through_the_api(people, storage_root, label_column, labels):
    data = {"file": SimpleUploadedFile("ewt-dev-head.conllu", _ud_excerpt(3)), "format": "conllu",
            "label_column": label_column}
    response = token_client(people["viewer"]).post("/api/v1/uploads/corpora/", data, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["format"] == "conllu" and body["label_column"] == label_column and body["n_sentences"] == 3
    assert body["n_words"] > 20 and body["n_labels"] >= 2
    assert labels in str(body["metadata"])
    assert CorpusUpload.objects.get(pk=body["id"]).owner == people["viewer"]


def test_conllu_upload_without_labels(people, storage_root):
    data = {"file": SimpleUploadedFile("ewt.conllu", _ud_excerpt(2)), "format": "conllu", "label_column": ""}
    body = token_client(people["owner"]).post("/api/v1/uploads/corpora/", data, format="multipart").json()
    assert body["label_column"] == "" and body["n_labels"] == 0 and body["n_sentences"] == 2


def test_plain_word_label_pair_upload(people, storage_root):
    data = {"format": "plain", "file": SimpleUploadedFile("train.word", b"The cat sat .\nDogs bark .\n"),
            "label_file": SimpleUploadedFile("train.label", b"DT NN VBD .\nNNS VBP .\n")}
    response = token_client(people["owner"]).post("/api/v1/uploads/corpora/", data, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["format"], body["n_sentences"], body["n_words"]) == ("plain", 2, 7)
    assert body["label_column"] == "label"


@pytest.mark.parametrize("case", ["count mismatch", "not utf-8", "empty", "conllu with label file", "bad column"])
def test_corpus_refusals_carry_the_message_and_leave_nothing(people, assert_nothing_left, case):
    word = b"The cat sat .\nDogs bark .\n"
    data = {
        "count mismatch": {"format": "plain", "file": SimpleUploadedFile("a.word", word),
                           "label_file": SimpleUploadedFile("a.label", b"DT NN VBD .\nNNS .\n")},
        "not utf-8": {"format": "plain", "file": SimpleUploadedFile("a.word", b"caf\xe9 .\n")},
        "empty": {"format": "conllu", "file": SimpleUploadedFile("a.conllu", b"")},
        "conllu with label file": {"format": "conllu", "file": SimpleUploadedFile("a.conllu", _ud_excerpt(1)),
                                   "label_file": SimpleUploadedFile("a.label", b"X\n")},
        "bad column": {"format": "conllu", "file": SimpleUploadedFile("a.conllu", _ud_excerpt(1)),
                       "label_column": "lemma"},
    }[case]
    expected = {"count mismatch": "line 2", "not utf-8": "UTF-8", "empty": "empty",
                "conllu with label file": "send no separate label file", "bad column": "lemma"}[case]
    response = token_client(people["owner"]).post("/api/v1/uploads/corpora/", data, format="multipart")
    assert response.status_code == 400
    assert expected in response.json()["detail"], response.json()
    assert_nothing_left(people["owner"])


def test_quota_refusal_through_the_api_leaves_nothing(people, assert_nothing_left):
    owner = people["owner"]
    owner.storage_quota_bytes = 10
    owner.save(update_fields=["storage_quota_bytes"])
    response = token_client(owner).post("/api/v1/uploads/test-sets/",
                                        {"file": SimpleUploadedFile("s.txt", b"far more than ten bytes .\n")},
                                        format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "quota" and "storage quota" in response.json()["detail"]
    assert_nothing_left(owner)


def test_missing_file_is_a_field_error(people, storage_root):
    response = token_client(people["owner"]).post("/api/v1/uploads/corpora/", {"format": "conllu"},
                                                  format="multipart")
    assert response.status_code == 400 and "file" in response.json()["fields"]


def test_test_set_with_references(people, storage_root):
    data = {"file": SimpleUploadedFile("src.txt", b"Hallo .\nWelt .\n"),
            "reference_file": SimpleUploadedFile("ref.txt", b"Hello .\nWorld .\n")}
    body = token_client(people["owner"]).post("/api/v1/uploads/test-sets/", data, format="multipart").json()
    assert body["n_sentences"] == 2 and body["has_references"] is True


def test_upload_rename_and_delete_remove_the_files(world, django_capture_on_commit_callbacks):
    editor = token_client(world["editor"])
    attached = world["attached"]
    renamed = editor.patch(f"/api/v1/uploads/test-sets/{attached.pk}/", {"name": "  Better name "}, format="json")
    assert renamed.json()["name"] == "Better name"
    assert editor.patch(f"/api/v1/uploads/test-sets/{attached.pk}/", {"name": ""}, format="json").json()["fields"] == {
        "name": ["An upload needs a name."]}
    stored = [attached.storage_name(name) for name in attached.files]
    assert all(default_storage.exists(name) for name in stored)
    with django_capture_on_commit_callbacks(execute=True):
        assert editor.delete(f"/api/v1/uploads/test-sets/{attached.pk}/").status_code == 204
    assert not TestSetUpload.objects.filter(pk=attached.pk).exists()
    assert not any(default_storage.exists(name) for name in stored)
    assert world["project"].test_set_uploads.count() == 0


# ---------------------------------------------------------------------------------------------- throttling


@pytest.fixture
def low_user_rate(settings, monkeypatch):
    """A user rate of 3 a minute. DRF copies the rates into the throttle class at import, so the class
    attribute is pointed at the reloaded settings too."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"user": "3/minute", "anon": "100000/hour"}}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", api_settings.DEFAULT_THROTTLE_RATES)
    return 3


def test_throttling_returns_429_when_the_rate_is_exceeded(people, low_user_rate):
    owner = people["owner"]
    # earlier tests' requests may sit under the same user ids (SQLite reuses them)
    cache_keys = [f"throttle_user_{people[who].pk}" for who in ("owner", "viewer")]
    cache.delete_many(cache_keys)
    try:
        client = token_client(owner)
        statuses = [client.get("/api/v1/projects/").status_code for _ in range(low_user_rate + 1)]
        assert statuses == [200] * low_user_rate + [429]
        refused = client.get("/api/v1/projects/")
        assert "throttled" in refused.json()["detail"].lower() and int(refused["Retry-After"]) > 0
        # the limit is per user: someone else is still served
        assert token_client(people["viewer"]).get("/api/v1/projects/").status_code == 200
    finally:
        cache.delete_many(cache_keys)


def test_schema_documents_the_multipart_uploads(client):
    schema = client.get("/api/schema/?format=json").json()
    for path in ("/api/v1/uploads/models/", "/api/v1/uploads/corpora/", "/api/v1/uploads/test-sets/"):
        assert list(schema["paths"][path]["post"]["requestBody"]["content"]) == ["multipart/form-data"]
    assert "/api/v1/projects/{project_pk}/memberships/{id}/" in schema["paths"]


# ---------------------------------------------------------------------------------------------- streaming


def test_api_upload_streams_from_the_socket_to_storage(people, tiny_model_dir, storage_root, tmp_path):
    """A ~48 MB multipart request is read from a file-backed WSGI input through the whole stack (middleware,
    token auth, DRF's multipart parser, the service); Python's peak allocation stays a small fraction of it."""
    import io
    import tracemalloc

    import numpy as np
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, ClientHandler, encode_multipart
    from safetensors.numpy import save_file

    size = 48 * 1024 * 1024
    weights = tmp_path / "model.safetensors"
    save_file({"big.weight": np.zeros(size // 4, dtype=np.float32)}, str(weights))
    parts = {"files": [SimpleUploadedFile(name, (tiny_model_dir / name).read_bytes())
                       for name in ("config.json", "tokenizer.json", "vocab.txt")]}
    parts["files"].append(SimpleUploadedFile("model.safetensors", weights.read_bytes()))
    body_path = tmp_path / "body"
    body_path.write_bytes(encode_multipart(BOUNDARY, parts))
    del parts
    weights.unlink()
    _, secret = create_token(people["owner"], "big")

    def call(stream, length):
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/uploads/models/", "SERVER_NAME": "testserver",
            "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": stream, "CONTENT_TYPE": MULTIPART_CONTENT,
            "CONTENT_LENGTH": str(length), "HTTP_AUTHORIZATION": f"Token {secret}", "QUERY_STRING": "",
        }
        # the test client's handler: a real WSGI request, minus closing the test's database connection
        response = ClientHandler()(environ)
        return response.status_code, response.content

    empty = io.BytesIO(b"")
    assert call(empty, 0)[0] == 400  # warm-up: one-time imports
    with open(body_path, "rb") as stream:
        tracemalloc.start()
        try:
            status_code, content = call(stream, body_path.stat().st_size)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert status_code == 201, content[:500]
    upload = ModelUpload.objects.get(owner=people["owner"])
    assert default_storage.size(upload.storage_name("model.safetensors")) > size
    # measured: ~7.7 MB whether the upload is 32 or 64 MB (fixed overheads), so it does not grow with the size
    assert peak < size // 4, f"peak Python allocation {peak:,} bytes for a {size:,}-byte upload"
