"""What the example projects show once their runs finished, read from a served site's database and results
(issue #11): each run's time, the ablation curves at their largest removal (top / random / bottom), and the tense
preset of the Manipulation view on the translation models, through the view's own code and the realtime worker.

    NEUROX_DATA_DIR=var python -m benchmarks.bench_example_projects [--sentences 40] [--alphas 2 3 5]

Run it against the folder `scripts/serve` uses, while it serves (the preset needs its realtime worker).
"""

from __future__ import annotations

import argparse
import time

import django

django.setup()

from django.http import QueryDict  # noqa: E402

from analysis.examples.grammar import PAST, PRESENT, with_tense  # noqa: E402
from analysis.models import Run, StepKind  # noqa: E402
from analysis.workspace.recipes import clean_recipe  # noqa: E402
from analysis.workspace import RunView  # noqa: E402
from analysis.workspace.manipulation import presenter as manipulation_presenter  # noqa: E402
from analysis.workspace.ablation.presenter import curves_of  # noqa: E402


def tense_flips(run: Run, model, alpha: float, n_sentences: int) -> tuple[int, int, float]:
    """(flipped, tried, seconds): the preset "from Pres towards Past, strength α" with the top 10 of the model's
    lca ranking, on single-verb present-tense corpus sentences; a flip is the original with its tense token made
    past and nothing else changed."""
    store = model.store()
    lca = next(s for s in model.ranking_steps if s.params.get("method") == "lca")
    sentences = [i for i in range(store.n_sentences)
                 if [x for x in manipulation_presenter.sentence_labels(store, i) if x] == [PRESENT]][:n_sentences]
    flipped, started = 0, time.perf_counter()
    for sentence in sentences:
        query = QueryDict(mutable=True)
        query.update({"model": str(model.pk), "ranking": str(lca.pk), "k": "10", "corpus": str(sentence),
                      "preset_from": PRESENT, "preset_to": PAST, "alpha": str(alpha)})
        page = manipulation_presenter.page_state(RunView.of(run), query, ())
        answer = manipulation_presenter.manipulate(RunView.of(run), clean_recipe(run.project, page["recipe"], run))
        shown = manipulation_presenter.side_by_side(answer)
        original, manipulated = shown["original"]["text"].split(), shown["manipulated"]["text"].split()
        flipped += manipulated == with_tense(original, PAST) != original
    return flipped, len(sentences), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=40)
    parser.add_argument("--alphas", type=float, nargs="+", default=[2.0, 3.0, 5.0])
    args = parser.parse_args()
    rows = []
    for run in Run.objects.filter(project__is_example=True).select_related("project").order_by("pk"):
        took = (run.finished_at - run.created_at).total_seconds() if run.finished_at else None
        rows.append((run.project.name, run.state, f"{took:.0f} s" if took is not None else "-"))
        for step in run.steps.filter(kind__in=[StepKind.MODEL_ABLATION, StepKind.PROBE_ABLATION]).order_by("pk"):
            curve = curves_of(step)[0]
            last = {d: line.points[-1] for d, line in curve.lines.items()}
            at = max(p.percent for p in last.values())
            values = " / ".join(f"{last[d].value:.3g}" if d in last else "-" for d in ("top", "random", "bottom"))
            rows.append((f"  {curve.title[:70]}", f"{at:.0f} % removed", f"top / random / bottom {values}"))
        if "translation" in run.project.name.lower():
            for model in RunView.of(run).usable_models:
                for alpha in args.alphas:
                    flipped, tried, seconds = tense_flips(run, model, alpha, args.sentences)
                    rows.append((f"  tense preset, {model.upload.name}, α = {alpha:g}",
                                 f"{flipped}/{tried} turned past", f"{1000 * seconds / max(tried, 1):.0f} ms each"))
    width = max(len(r[0]) for r in rows) + 2
    for name, a, b in rows:
        print(f"{name:<{width}}{a:<22}{b}")


if __name__ == "__main__":
    main()
