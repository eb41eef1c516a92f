"""The Analysis view's benchmark (issue #10, brief "explore"): server time of every partial on a real run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/neurox_explore REDIS_URL=redis://127.0.0.1:6379/6 \\
        /work/main/.venv/bin/python benchmarks/bench_explore.py [--data /tmp/neurox-bench-explore] [--repeat 60]

1. Builds (or reuses, from ``--data``) the results of a real run through the engine directly, no Celery:
   all-MiniLM-L6-v2 × UD English EWT dev (25k words), hidden + MLP sets of every layer (2,688 + 9,216 =
   11,904 units), neuron statistics, a probeless ranking and an anova ranking with 4 bootstrap resamples.
2. Records them as a succeeded run in its own database (``neurox_bench_explore`` on DATABASE_URL's server,
   dropped and re-created; never the one named there) with the ORM: a user, a project, the Run, its Steps and
   their Results pointing at the files of step 1.
3. Times each page and partial through Django's full request handling (``django.test.Client``: middleware,
   session auth, PostgreSQL queries, template rendering) ``--repeat`` times after one warm-up request (the
   per-process caches of ``analysis.workspace`` are warm, as in a long-lived server process), and prints a
   table of p50 / p95 / max in milliseconds. Typed-text search runs the realtime task in this process (Celery
   eager: the same ``compute_activations`` a realtime worker runs, with the model kept loaded, without the
   broker round trip; ``benchmarks/bench_realtime.py`` times that path with a real worker).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics as pystats
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATABASE_NAME = "neurox_bench_explore"
TYPED_SENTENCE = ("The committee said that the new library will open next spring , after two years of "
                  "work on the old station building near the river in the old town .")  # 30 words


# ------------------------------------------------------------------------------------------------ the run's results


def build_results(data: Path) -> dict:
    """Store, statistics and two rankings under ``data/results`` (reused when already there)."""
    from analysis.engine.extract import ExtractionParams, extract_activations
    from analysis.engine.formats import read_conllu
    from analysis.engine.hashing import sha256_json
    from analysis.engine.loading import load_model
    from analysis.engine.methods import compute_ranking
    from analysis.engine.stats import NeuronStats, compute_neuron_stats
    from analysis.engine.store import open_complete
    from tests.assets import UD_DEV, minilm_model_dir

    results = data / "results"
    manifest_path = data / "manifest.json"
    if manifest_path.is_file():
        return json.loads(manifest_path.read_text())
    (results / "stores").mkdir(parents=True, exist_ok=True)
    timings = {}
    started = time.perf_counter()
    corpus = read_conllu(UD_DEV, label_column="upos")
    lm = load_model(minilm_model_dir())
    store = extract_activations(lm, corpus, results / "stores", ExtractionParams(neuron_sets=("hidden", "mlp"),
                                                                                label_column="upos"))
    timings["extract_s"] = time.perf_counter() - started
    key = store.meta["key"]
    store = open_complete(results / "stores" / key, key)
    selection = {"neuron_sets": ["hidden", "mlp"], "layers": None}
    started = time.perf_counter()
    stats_key = sha256_json({"result": "statistics", "store": key, **selection})
    stats_dir = results / "statistics" / stats_key
    if not stats_dir.is_dir():
        stats = compute_neuron_stats(store.features(["hidden", "mlp"]), store.words, store.sentence_offsets,
                                     store.labels, store.label_names)
        stats_dir.mkdir(parents=True)
        stats.save(stats_dir / "stats")
    NeuronStats.load(stats_dir / "stats")
    timings["statistics_s"] = time.perf_counter() - started
    rankings = []
    for method, bootstrap in (("probeless", 0), ("anova", 4)):
        params = {"store_key": key, **selection, "method": method, "bootstrap": bootstrap, "seed": 0}
        ranking_key = sha256_json({"result": "ranking", **params})
        target = results / "rankings" / f"{ranking_key}.json"
        started = time.perf_counter()
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            ranking = compute_ranking(store, method, neuron_sets=["hidden", "mlp"], seed=0, bootstrap=bootstrap)
            target.write_text(json.dumps(ranking.to_dict()))
        timings[f"{method}_s"] = time.perf_counter() - started
        rankings.append({"key": ranking_key, "params": params})
    manifest = {"store_key": key, "statistics_key": stats_key, "selection": selection, "rankings": rankings,
                "words": store.n_words, "sentences": store.n_sentences,
                "units": sum(s["layers"] * s["units"] for s in store.neuron_sets.values()), "build": timings}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


# ------------------------------------------------------------------------------------------------ database rows


def configure(data: Path) -> None:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgres"):
        sys.exit("Set DATABASE_URL (PostgreSQL): this benchmark measures the production setup.")
    parts = urlsplit(database_url)
    import psycopg

    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{DATABASE_NAME}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{DATABASE_NAME}"))
    os.environ.setdefault("NEUROX_DATA_DIR", str(data / "site"))
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ["DEBUG"] = "true"  # plain HTTP from the test client (no SSL redirect); templates as in production
    os.environ["DJANGO_SETTINGS_MODULE"] = "neurox_site.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.NEUROX_RESULTS_DIR = data / "results"
    settings.CELERY_TASK_ALWAYS_EAGER = True  # typed text: the realtime task runs in this process
    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)


def record_run(manifest: dict):
    """The run as the pipeline leaves it: succeeded steps with ready results (and a user to sign in)."""
    from analysis.models import Result, ResultKind, ResultState, Run, RunState, Step, StepKind, StepState
    from tests.factories import UserFactory
    from tests.projects_tests.factories import ProjectFactory

    from django.core.files.uploadedfile import SimpleUploadedFile

    from projects.services.attachments import attach_upload
    from projects.services.library import create_model_upload
    from tests.assets import minilm_model_dir

    owner = UserFactory(username="bench")
    project = ProjectFactory(owner=owner, name="MiniLM × EWT dev")
    model = create_model_upload(owner, files=[SimpleUploadedFile(p.name, p.read_bytes()) for p in
                                              sorted(minilm_model_dir().iterdir()) if p.is_file()], name="MiniLM")
    attach_upload(owner, project, model)  # typed-text search runs it
    run = Run.objects.create(project=project, created_by=owner, state=RunState.SUCCEEDED, request={
        "models": [], "corpus": None, "neuron_sets": ["hidden", "mlp"], "layers": None, "aggregation": "last",
        "rankings": [], "statistics": True})

    def step(kind, title, params, key, result_kind, path):
        Result.objects.create(kind=result_kind, key=key, state=ResultState.READY, path=path)
        return Step.objects.create(run=run, kind=kind, title=title, params=params, result_key=key, queue="cpu",
                                   state=StepState.SUCCEEDED)

    key = manifest["store_key"]
    step(StepKind.EXTRACT, "Extract activations: MiniLM × en_ewt-ud-dev", {"model": model.pk, "corpus": None}, key,
         ResultKind.STORE, f"stores/{key}")
    step(StepKind.STATISTICS, "Neuron statistics: MiniLM", {"store_key": key, **manifest["selection"]},
         manifest["statistics_key"], ResultKind.STATISTICS, f"statistics/{manifest['statistics_key']}")
    ranking_steps = [step(StepKind.RANKING, f"Ranking {r['params']['method']}: MiniLM", r["params"], r["key"],
                          ResultKind.RANKING, f"rankings/{r['key']}.json") for r in manifest["rankings"]]
    return owner, run, ranking_steps


# ------------------------------------------------------------------------------------------------ timing


def time_requests(owner, run, ranking_steps, repeat: int) -> list[dict]:
    from django.test import Client
    from django.urls import reverse

    from analysis.engine.ranking import Ranking  # noqa: F401  (imported once, as a server would have)

    client = Client()
    client.force_login(owner)
    args = [run.project_id, run.pk]
    anova = ranking_steps[1].pk
    top = json.loads((Path(os.environ["NEUROX_BENCH_RESULTS"]) / "pool.json").read_text())
    pools = ",".join(top[:10])
    cases = [
        ("Analysis page (pool of 10)", reverse("analysis:run-analysis", args=args), f"ranking={anova}&pools={pools}"),
        ("rankings partial, k=1%", reverse("analysis:run-analysis-rankings", args=args), f"ranking={anova}&k=1%25"),
        ("rankings partial, label NOUN", reverse("analysis:run-analysis-rankings", args=args),
         f"ranking={anova}&sub=NOUN"),
        ("neuron list, page 3", reverse("analysis:run-analysis-neurons", args=args), f"ranking={anova}&npage=3"),
        ("neuron list, mlp L4, label VERB", reverse("analysis:run-analysis-neurons", args=args),
         f"ranking={anova}&set=mlp&layer=4&label=VERB"),
        ("add to pool (workbench)", reverse("analysis:run-analysis-workbench", args=args),
         f"ranking={anova}&pools={pools},{top[10]}"),
        ("activation map, pool 10, page 40", reverse("analysis:run-analysis-map", args=args),
         f"ranking={anova}&pools={pools}&page=40"),
        ("activation map, pool 50 (2 sentences)", reverse("analysis:run-analysis-map", args=args),
         f"ranking={anova}&pools={','.join(top[:50])}"),
        ("activation map, search 'the'", reverse("analysis:run-analysis-map", args=args),
         f"ranking={anova}&pools={pools}&q=the&page=5"),
        ("typed text, 30 words (in-process)", reverse("analysis:run-analysis-typed", args=args),
         f"ranking={anova}&pools={pools}&text={'+'.join(TYPED_SENTENCE.split())}"),
    ]
    rows = []
    for name, path, query in cases:
        url = f"{path}?{query}"
        first = client.get(url)
        if first.status_code != 200:
            raise RuntimeError(f"{name}: {first.status_code} {first.content[:500]!r}")
        times, cpu = [], []
        for _ in range(repeat):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200
        times.sort()
        rows.append({"request": name, "p50": pystats.median(times), "p95": times[int(0.95 * (len(times) - 1))],
                     "max": times[-1], "cpu": pystats.median(cpu), "kib": len(first.content) / 1024})
    return rows


def print_table(manifest: dict, rows: list[dict], repeat: int) -> None:
    print(f"\nAnalysis view: MiniLM × UD EWT dev, {manifest['words']:,} words, {manifest['sentences']:,} sentences, "
          f"{manifest['units']:,} units (hidden + mlp); {repeat} requests each after a warm-up; Django test client "
          "on PostgreSQL, one process. Machine loaded by other engineers (2 cores shared by seven).\n")
    print(f"| {'request':<38} | {'p50 ms':>7} | {'p95 ms':>7} | {'max ms':>7} | {'CPU p50':>7} | {'KiB':>6} |")
    print(f"|{'-' * 40}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")
    for r in rows:
        print(f"| {r['request']:<38} | {r['p50']:7.1f} | {r['p95']:7.1f} | {r['max']:7.1f} | {r['cpu']:7.1f} | "
              f"{r['kib']:6.1f} |")
    print(f"\nWall time per request (ms) and this process's CPU time (ms; the database's work is not in it); load "
          f"average when done: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. Target: p95 < 150 ms for every "
          "partial.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/neurox-bench-explore"))
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--build-only", action="store_true", help="only build (or check) the engine results")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    manifest = build_results(args.data)
    print(json.dumps(manifest["build"]))
    if args.build_only:
        return
    configure(args.data)
    os.environ["NEUROX_BENCH_RESULTS"] = str(args.data)
    pool_file = args.data / "pool.json"
    if not pool_file.is_file():
        from analysis.engine.ranking import Ranking

        ranking = Ranking.from_dict(json.loads((args.data / "results" / "rankings" /
                                                f"{manifest['rankings'][1]['key']}.json").read_text()))
        pool_file.write_text(json.dumps([n.label for n in ranking.top(60)]))
    owner, run, steps = record_run(manifest)
    rows = time_requests(owner, run, steps, args.repeat)
    print_table(manifest, rows, args.repeat)


if __name__ == "__main__":
    main()
