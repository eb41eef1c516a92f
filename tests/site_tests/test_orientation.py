"""Orientation (issue #6, item 12): the first page after sign-in says what to do next and shows recent projects;
the library is in the navigation; empty headings are not shown; nothing promises runs that do not exist yet."""

import json
import re

import pytest
from django.urls import reverse

from projects.models import CorpusFormat, CorpusUpload, ModelUpload, Role
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def steps_done(html: str) -> dict[str, bool]:
    """Each next step on the start page and whether it is marked done."""
    items = re.findall(r'<li class="step( step--done)?">\s*<a href="[^"]*">([^<]+)</a>', html)
    return {title: bool(done) for done, title in items}


def model_upload(owner, name="MiniLM"):
    return ModelUpload.objects.create(owner=owner, name=name, sha256="a" * 64, size_bytes=10, files={},
                                      architecture="BertModel", model_type="bert", model_kind="encoder")


def corpus_upload(owner, name="EWT dev"):
    return CorpusUpload.objects.create(owner=owner, name=name, sha256="b" * 64, size_bytes=10, files={},
                                       format=CorpusFormat.CONLLU, n_sentences=1, n_words=2)


def test_signing_in_lands_on_the_next_steps(client):
    UserFactory(username="ada")
    response = client.post(reverse("login"), {"username": "ada", "password": DEFAULT_PASSWORD}, follow=True)
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("home")
    assert "What to do next" in html
    assert steps_done(html) == {"Upload a model": False, "Upload a corpus": False, "Create a project": False,
                                "Add the model and the corpus to the project": False}
    assert 'href="/projects/library/model/new/"' in html and 'href="/projects/library/corpus/new/"' in html
    assert "Recent projects" not in html  # no heading over nothing


def test_each_step_is_marked_done_when_done(client):
    ada = UserFactory(username="ada")
    client.force_login(ada)
    model = model_upload(ada)
    assert steps_done(client.get(reverse("home")).content.decode())["Upload a model"] is True
    corpus = corpus_upload(ada)
    project = ProjectFactory(owner=ada, name="Parts of speech")
    html = client.get(reverse("home")).content.decode()
    assert steps_done(html) == {"Upload a model": True, "Upload a corpus": True, "Create a project": True,
                                "Add the model and the corpus to the project": False}
    project.model_uploads.add(model)
    project.corpus_uploads.add(corpus)
    html = client.get(reverse("home")).content.decode()
    assert all(steps_done(html).values())
    assert "You are set up" in html


def test_recent_projects_are_listed_newest_first_and_only_the_users(client):
    ada = UserFactory(username="ada")
    for name in ["Old", "Middle", "New"]:
        ProjectFactory(owner=ada, name=name)
    ProjectFactory(name="Someone else's")
    shared = ProjectFactory(name="Shared with ada")
    MembershipFactory(project=shared, user=ada, role=Role.VIEWER)
    client.force_login(ada)
    html = client.get(reverse("home")).content.decode()
    recent = html.split('id="recent-heading"')[1]
    names = re.findall(r'<a href="/projects/\d+/">([^<]+)</a>', recent)
    assert names == ["Shared with ada", "New", "Middle", "Old"]


def test_the_library_and_the_start_page_are_in_the_navigation(client, user):
    client.force_login(user)
    html = client.get(reverse("projects:library")).content.decode()
    nav = html.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert f'<a href="{reverse("projects:library")}" aria-current="page">Library</a>' in nav
    assert f'href="{reverse("home")}"' in nav and f'href="{reverse("projects:list")}"' in nav


def test_an_empty_library_shows_no_empty_headings(client, user):
    client.force_login(user)
    html = client.get(reverse("projects:library")).content.decode()
    assert "You have not uploaded anything yet." in html
    for heading in ("Models", "Corpora", "Test sets", "Shared with you through projects"):
        assert f">{heading}</h2>" not in html
    model_upload(user)
    html = client.get(reverse("projects:library")).content.decode()
    assert ">Models</h2>" in html and ">Corpora</h2>" not in html


def test_an_empty_project_shows_no_empty_headings_and_buttons_say_what_they_add(client, user):
    project = ProjectFactory(owner=user)
    client.force_login(user)
    html = client.get(project.get_absolute_url()).content.decode()
    assert "No models, corpora or test sets in this project yet." in html
    assert "<h3>Models</h3>" not in html and "Add from your library" not in html
    model_upload(user)
    corpus_upload(user)
    html = client.get(project.get_absolute_url()).content.decode()
    assert "Add from your library" in html
    assert ">Add model</button>" in html and ">Add corpus</button>" in html and ">Add test set</button>" not in html


def test_the_members_page_promises_no_runs(client, user):
    project = ProjectFactory(owner=user)
    client.force_login(user)
    html = client.get(reverse("projects:members", args=[project.pk])).content.decode()
    assert "run" not in html.split("<main")[1].lower().replace("running", "")
    assert "editors also add and remove the project's models, corpora and test sets" in html


def test_the_upload_forms_carry_the_servers_own_file_rules(client, user, settings):
    """static/js/uploads.js names refused files before sending from these rules, not from a copy of them."""
    from projects.uploads import (ARCHIVE_SUFFIXES, DOCUMENT_PREFIXES, DOCUMENT_SUFFIXES, MODEL_FILE_SUFFIXES,
                                  PICKLE_SUFFIXES, REPOSITORY_FILES, SENTENCE_TRANSFORMERS_FILES)

    settings.NEUROX_MAX_UPLOAD_BYTES = 12345
    client.force_login(user)
    for kind in ("model", "corpus", "test_set"):
        html = client.get(reverse("projects:upload", args=[kind])).content.decode()
        rules = json.loads(html.split('<script id="upload-rules" type="application/json">')[1].split("</script>")[0])
        assert rules == {"maxBytes": 12345, "archiveSuffixes": list(ARCHIVE_SUFFIXES),
                         "modelFileSuffixes": list(MODEL_FILE_SUFFIXES), "pickleSuffixes": list(PICKLE_SUFFIXES),
                         "ignoredNames": sorted(REPOSITORY_FILES | SENTENCE_TRANSFORMERS_FILES),
                         "ignoredSuffixes": list(DOCUMENT_SUFFIXES), "ignoredPrefixes": list(DOCUMENT_PREFIXES)}
        assert f'data-upload-kind="{kind}"' in html and "js/uploads.js" in html
