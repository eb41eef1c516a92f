"""Screenshots of the example projects' views for the README (run on demand, against a served site whose examples
have finished; it uses that site's settings and data folder):

    NEUROX_DATA_DIR=var python -m benchmarks.screenshot_examples http://127.0.0.1:8000 static/img/examples

It signs in as a ``newcomer`` account (made here), who sees the examples as a viewer. The Manipulation shot is
the translation example's tense preset on the first present-tense corpus sentence it turns past.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.http import QueryDict  # noqa: E402

from analysis.examples.grammar import PAST, PRESENT, with_tense  # noqa: E402
from analysis.models import Run, StepKind  # noqa: E402
from analysis.workspace.recipes import clean_recipe  # noqa: E402
from analysis.workspace import RunView, ranking_of
from analysis.workspace.manipulation import presenter as manipulation_presenter

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def example_run(word: str) -> Run:
    return Run.objects.filter(project__is_example=True, project__name__icontains=word).latest("pk")


def tense_preset_query(run: Run, model, ranking_step, sentence: int) -> QueryDict:
    query = QueryDict(mutable=True)
    query.update({"model": str(model.pk), "ranking": str(ranking_step.pk), "k": "10", "corpus": str(sentence),
                  "preset_from": PRESENT, "preset_to": PAST, "alpha": "3"})
    return query


def turns_past(run: Run, query: QueryDict) -> bool:
    page = manipulation_presenter.page_state(RunView.of(run), query, ())
    answer = manipulation_presenter.manipulate(RunView.of(run), clean_recipe(run.project, page["recipe"], run))
    shown = manipulation_presenter.side_by_side(answer)
    original, manipulated = shown["original"]["text"].split(), shown["manipulated"]["text"].split()
    return manipulated == with_tense(original, PAST) != original


def pages() -> dict[str, str]:
    minilm, translation = example_run("MiniLM"), example_run("translation")
    lca = next(s for s in minilm.steps.filter(kind=StepKind.RANKING) if s.params.get("method") == "lca")
    top = [n.label for n in ranking_of(lca).top(3)]
    model = RunView.of(translation).usable_models[1]
    tense_lca = next(s for s in model.ranking_steps if s.params.get("method") == "lca")
    store = model.store()
    present = (i for i in range(store.n_sentences)
               if [x for x in manipulation_presenter.sentence_labels(store, i) if x] == [PRESENT])
    query = next(q for q in (tense_preset_query(translation, model, tense_lca, i) for i in present)
                 if turns_past(translation, q))
    curve = next(s for s in translation.steps.filter(kind=StepKind.MODEL_ABLATION).order_by("pk")
                 if model.upload.name in s.title)
    minilm_base = f"/projects/{minilm.project_id}/runs/{minilm.pk}"
    translation_base = f"/projects/{translation.project_id}/runs/{translation.pk}"
    return {
        "projects": "/projects/",
        "analysis-minilm": f"{minilm_base}/analysis/?ranking={lca.pk}&pools={','.join(top)}",
        "neuron-minilm": f"{minilm_base}/neurons/{top[0]}/",
        "ablation-translation": f"{translation_base}/ablation/?curves={curve.pk}",
        "manipulation-translation": f"{translation_base}/manipulation/?{query.urlencode()}",
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    base, out = sys.argv[1].rstrip("/"), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    user, _ = get_user_model().objects.get_or_create(username="newcomer",
                                                     defaults={"email": "newcomer@example.edu"})
    user.set_password(password)
    user.save()
    urls = pages()  # the database first: Django refuses queries inside Playwright's event loop
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/accounts/login/")
        page.fill("input[name=username]", "newcomer")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        for name, path in urls.items():
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            if name.startswith("manipulation"):  # scroll to the side-by-side output once it arrived
                page.wait_for_selector("#manip-output[aria-busy=false]", timeout=30000)
                page.locator("#manip-output-title").scroll_into_view_if_needed()
                page.evaluate("window.scrollBy(0, -120)")
            if name.startswith("ablation"):
                page.locator("svg").first.scroll_into_view_if_needed()
                page.evaluate("window.scrollBy(0, -160)")
            page.screenshot(path=str(out / f"{name}.png"))
            print(f"{name}: {path}")
        browser.close()


if __name__ == "__main__":
    main()
