"""Command line for scripts and notebooks-in-a-shell: ``python -m analysis.engine <command> ...``.

    extract  MODEL_DIR CORPUS        activations into an on-disk store (cached by content, resumable)
    rank     MODEL_DIR CORPUS        extract if needed, then rank neurons, with confidence intervals
                                     (--eval-corpus FILE: also score the probe on another corpus)
                                     (--l1/--l2/--epochs: lca's probe; --consensus: consensus over resamples)
    crossmodel CORPUS MODEL_DIR...   cross-model rankings (maxcorr, mincorr, linreg, svcca) over ≥ 2 models
    concept  MODEL_DIR CORPUS LABEL  neurons that detect one label against the rest (average precision)
    probe-ablate MODEL_DIR CORPUS    train the lca probe, then keep only the top / random / bottom k % of its neurons
                                     (--save-probe DIR keeps the probe for 'ablate --probe')
    agree    RANKING.json ...        agreement (Jaccard, Kendall tau) between saved rankings' top-k
    stats    STORE NEURON...         one neuron's statistics, top words and top contexts
    ablate   MODEL_DIR RANKING.json  model-level ablation curve (neurons zeroed) on a test set: the model's own task,
                                     or (--probe DIR, test set a labelled corpus) a saved probe's accuracy
    manipulate MODEL_DIR SENTENCES   outputs before / after changing chosen neurons (--zero, --clamp, --scale,
                                     --shift; --probe DIR: a saved probe's per-word labels instead)
    export   STORE OUT               activations as neurox reads them: HDF5 (.hdf5) or JSON (.json); or JSON lines (.jsonl)

Sentences over ``--max-sentence-words`` (default 512) refuse the corpus, naming them; ``--skip-long-sentences``
leaves them out with a warning instead (extraction windows long sentences, so the limit is only a guard).
CORPUS is a CoNLL-U file (``--label-column upos|xpos|deprel|feats:Key``) or a NeuroX ``.word`` file (labels from
``--labels FILE.label``). Stores go under ``--cache-dir`` (default ``var/engine``) in ``stores/<key>/``, the key
made from the model's and the corpus's content and every extraction option, so running ``rank`` twice extracts
once and requests that differ in an option keep separate stores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .confidence import CONSENSUS_METHODS
from .jobs import Job
from .methods import PROBE_METHODS, method_named
from .neurons import NeuronId
from .ranking import Ranking


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class _Progress:
    """Prints ``label: done/total unit (pct)`` to stderr at most every few seconds, and always the last one."""

    def __init__(self, label: str, every: float = 3.0):
        self.label, self.every, self.last = label, every, 0.0

    def __call__(self, done: int, total: int, unit: str = "") -> None:
        now = time.monotonic()
        if now - self.last >= self.every or done >= total:
            self.last = now
            unit = f" {unit}" if unit else ""
            _say(f"{self.label}: {done:,}/{total:,}{unit} ({100 * done / max(total, 1):.0f} %)")


def printing_job(label: str, every: float = 3.0) -> Job:
    """The command line's Job: progress as ``label: done/total unit`` every few seconds, log lines as they come."""
    return Job(on_progress=_Progress(label, every), on_log=_say)


def read_corpus(path: Path, label_column: str | None, labels: Path | None, *,
                max_sentence_words: int | None = None, skip_long_sentences: bool = False):
    from . import formats

    limits = {"max_sentence_words": formats.DEFAULT_MAX_SENTENCE_WORDS if max_sentence_words is None
              else (max_sentence_words or None), "skip_long_sentences": skip_long_sentences}
    if path.suffix == ".word" or labels is not None:
        corpus = formats.read_plain(path, labels, word_filename=path.name,
                                    label_filename=labels.name if labels else None, **limits)
    else:
        corpus = formats.read_conllu(path, label_column or None, filename=path.name, **limits)
    for warning in corpus.warnings:
        _say(f"warning: {warning}")
    return corpus


def store_for(args):
    """Extract (or reuse) the store for ``args.model`` × ``args.corpus``: ``<cache-dir>/stores/<key>/``.

    The key needs the model's file hashes, not the model: a store that is already complete is reused without
    loading any weights."""
    from .extract import ExtractionParams, extract_activations
    from .loading import dtype_name

    corpus = read_corpus(Path(args.corpus), args.label_column, args.labels,
                         max_sentence_words=args.max_sentence_words, skip_long_sentences=args.skip_long_sentences)
    _say(f"corpus: {len(corpus.sentences):,} sentences, {corpus.n_words:,} words, "
         f"{len(corpus.label_names())} labels")
    params = ExtractionParams(neuron_sets=tuple(args.sets.split(",")), aggregation=args.aggregation,
                              max_length=args.max_length, dtype=dtype_name(args.half, None),
                              label_column=corpus.label_column)
    return extract_activations(args.model, corpus, Path(args.cache_dir) / "stores", params, job=printing_job("extraction"))


def _neuron_selection(args):
    sets = args.rank_sets.split(",") if args.rank_sets else None
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    return sets, layers


def print_ranking(ranking: Ranking, top: int, out=None) -> None:
    out = out or sys.stdout
    confidence = ranking.confidence or {}
    low, high = confidence.get("rank_low"), confidence.get("rank_high")
    print(f"\n{ranking.method} ranking of {len(ranking.neuron_ids):,} neurons", file=out)
    for name in ("train_accuracy", "dev_accuracy", "test_accuracy", "majority_accuracy", "selectivity"):
        if ranking.metrics.get(name) is not None:
            print(f"  {name.replace('_', ' ')}: {ranking.metrics[name]:.4f}", file=out)
    held_out = ranking.metrics.get("held_out")
    if held_out:
        print(f"  eval corpus accuracy: {held_out['accuracy']:.4f} on {held_out['n_words']:,} words", file=out)
        if held_out["unknown_labels"]:
            unknown = ", ".join(f"{name} ({count})" for name, count in sorted(held_out["unknown_labels"].items()))
            print(f"  eval corpus words left out, labels the probe never saw: {held_out['n_unknown_label']:,}"
                  f" — {unknown}", file=out)
    header = f"{'rank':>5}  {'neuron':<14}{'score':>12}"
    if low is not None:
        header += f"  {'90% rank interval':>18}"
    print(header, file=out)
    for rank, index in enumerate(ranking.order[:top], start=1):
        line = f"{rank:>5}  {ranking.neuron_ids[index].label:<14}{ranking.scores[index]:>12.4g}"
        if low is not None:
            line += f"  {f'[{low[index] + 1}, {high[index] + 1}]':>18}"
        print(line, file=out)
    if confidence:
        stability = ", ".join(f"top-{confidence['k'][k]}: {v:.2f}" for k, v in confidence["stability"].items())
        print(f"top-k stability over {confidence['n_boot']} bootstrap resamples (mean Jaccard): {stability}",
              file=out)
    if ranking.per_label:
        print("per-label top 5:", file=out)
        for label, order in sorted(ranking.per_label.items()):
            print(f"  {label:<8} " + " ".join(ranking.neuron_ids[i].label for i in order[:5]), file=out)


def cmd_extract(args) -> None:
    store = store_for(args)
    sets = ", ".join(f"{name} ({spec['layers']} layers × {spec['units']})" for name, spec in store.neuron_sets.items())
    print(f"store {store.path}\n  {store.n_words:,} words, {store.n_sentences:,} sentences; neuron sets: {sets}")


def cmd_rank(args) -> None:
    from .methods import compute_ranking

    method = method_named(args.method)
    if args.eval_corpus and method.name not in PROBE_METHODS:
        raise ValueError(f"--eval-corpus scores a probe, and {method.name} trains none: use --method lca")
    options = _method_options(args, method.name)
    store = store_for(args)
    eval_store = None
    if args.eval_corpus:
        _say(f"eval corpus: {args.eval_corpus}")
        eval_store = store_for(argparse.Namespace(**{**vars(args), "corpus": args.eval_corpus,
                                                     "labels": args.eval_labels}))
    sets, layers = _neuron_selection(args)
    bootstrap = method.bootstrap if args.bootstrap is None else args.bootstrap
    ranking = compute_ranking(store, method.name, neuron_sets=sets, layers=layers, seed=args.seed,
                              bootstrap=bootstrap, eval_store=eval_store, job=printing_job(method.name),
                              **options)
    print_ranking(ranking, args.top)
    if args.json:
        Path(args.json).write_text(json.dumps(ranking.to_dict()), encoding="utf-8")
        _say(f"ranking saved to {args.json}")


PROBE_OPTIONS = ("l1", "l2", "epochs")


def _method_options(args, method: str) -> dict:
    """Options for ``compute_ranking`` from the flags given, checked before anything is extracted."""
    options = {"control": True} if args.control else {}
    given = {name: getattr(args, name) for name in PROBE_OPTIONS if getattr(args, name) is not None}
    if (given or args.control) and method not in PROBE_METHODS:
        flags = ", ".join(f"--{name}" for name in given) or "--control"
        raise ValueError(f"{flags} set(s) lca's probe, and {method} trains none: use --method lca")
    for name, value in given.items():
        if value < 0 or (name == "epochs" and value < 1):
            raise ValueError(f"--{name} must be {'at least 1' if name == 'epochs' else '0 or more'}, not {value}")
    options.update(given)
    if getattr(args, "consensus", None) is not None:
        bootstrap = args.bootstrap if args.bootstrap is not None else method_named(method).bootstrap
        if bootstrap < 4:
            raise ValueError(f"--consensus is built from bootstrap resamples: add --bootstrap 4 or more (now "
                             f"{bootstrap})")
        options["consensus"] = args.consensus
    return options


def _model_name(model_dir: str) -> str:
    return Path(model_dir).resolve().name


def cmd_crossmodel(args) -> None:
    from .crossmodel import crossmodel_rankings

    if len(args.models) < 2:
        raise ValueError("cross-model rankings compare models: give at least two model directories")
    methods = args.methods.split(",")
    names = [_model_name(m) for m in args.models]
    if len(set(names)) != len(names):
        names = [f"{i}:{name}" for i, name in enumerate(names)]
    sets, layers = _neuron_selection(args)
    models = []
    for model in args.models:
        store = store_for(argparse.Namespace(**{**vars(args), "model": model, "labels": args.labels}))
        models.append(store.features(sets, layers))
    results = crossmodel_rankings(models, methods=methods, model_names=names, job=printing_job("cross-model"))
    for method, rankings in results.items():
        for name, ranking in zip(names, rankings):
            print(f"\n{method} — model {name}")
            print_ranking(ranking, args.top)
    if args.json:
        Path(args.json).write_text(json.dumps({method: {name: r.to_dict() for name, r in zip(names, rankings)}
                                               for method, rankings in results.items()}), encoding="utf-8")
        _say(f"rankings saved to {args.json}")


def cmd_concept(args) -> None:
    from .baselines import binary_concept_ranking

    store = store_for(args)
    if not store.label_names:
        raise ValueError("a label concept needs labels, and this corpus has none (--label-column or --labels)")
    sets, layers = _neuron_selection(args)
    ranking = binary_concept_ranking(store.features(sets, layers), args.label, labels=store.labels,
                                     label_names=store.label_names, job=printing_job("concept"))
    print(f"\nneurons detecting {args.label} (average precision; chance {ranking.params['chance_ap']:.3f})")
    print_ranking(ranking, args.top)
    if args.json:
        Path(args.json).write_text(json.dumps(ranking.to_dict()), encoding="utf-8")
        _say(f"ranking saved to {args.json}")


def cmd_probe_ablate(args) -> None:
    from .methods import compute_ranking
    from .probe_ablation import MODES, probe_ablation

    percents = [float(x) for x in args.percents.split(",")]
    if any(not 0 < p <= 100 for p in percents):
        raise ValueError(f"--percents are shares of the neurons kept, each in (0, 100]: got {args.percents}")
    modes = args.modes.split(",")
    if set(modes) - set(MODES):  # before extracting and training
        raise ValueError(f"unknown ablation modes {sorted(set(modes) - set(MODES))}; choose from {MODES}")
    probe_options = _method_options(argparse.Namespace(**{**vars(args), "control": False, "consensus": None}),
                                    "lca")
    store = store_for(args)
    if not store.label_names:
        raise ValueError("a probe needs labels, and this corpus has none (--label-column or --labels)")
    sets, layers = _neuron_selection(args)
    ranking, probe, split = compute_ranking(store, "lca", neuron_sets=sets, layers=layers, seed=args.seed,
                                            return_probe=True, job=printing_job("probe"), **probe_options)
    features = store.features(sets, layers)
    if args.save_probe:
        probe.save(args.save_probe)
        _say(f"probe saved to {args.save_probe}")
    result = probe_ablation(probe, features, store.labels, ranking.order, train=split.train, test=split.test,
                            percents=percents, modes=modes, random_seeds=args.random_seeds, seed=args.seed,
                            job=printing_job("probe ablation"))
    print(f"\nprobe ablation over {result.n_neurons:,} neurons; full probe {result.baseline_accuracy:.4f}, "
          f"majority {result.majority_accuracy:.4f} (test accuracy)")
    for mode in modes:
        print(f"{mode}: {'kept %':>7}" + "".join(f"{s:>10}" for s in ("top", "random", "bottom")))
        for percent in percents:
            cells = "".join(f"{result.at(mode, s, percent)['accuracy']:>10.4f}" for s in ("top", "random", "bottom"))
            print(f"{'':{len(mode) + 2}}{percent:>7g}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict()), encoding="utf-8")
        _say(f"probe ablation saved to {args.json}")


def cmd_agree(args) -> None:
    from .confidence import method_agreement

    rankings = [Ranking.from_dict(json.loads(Path(p).read_text(encoding="utf-8"))) for p in args.rankings]
    table = method_agreement(rankings, k=int(args.k) if args.k.isdigit() else args.k)
    names = table["methods"]
    print(f"agreement of the top-{table['k']} (Jaccard / Kendall tau)")
    print(" " * 22 + "".join(f"{n[:20]:>22}" for n in names))
    for i, name in enumerate(names):
        cells = "".join(f"{table['jaccard'][i][j]:>10.2f} / {table['kendall_tau'][i][j]:>+7.2f}  "
                        for j in range(len(names)))
        print(f"{name[:20]:<22}{cells}")


def _open_store(path):
    from .store import ActivationStore

    return ActivationStore.open(path)


def cmd_stats(args) -> None:
    from .stats import compute_neuron_stats

    store = _open_store(args.store)
    neurons = [NeuronId.parse(text) for text in args.neurons]
    features = store.features(sorted({n.set for n in neurons}), sorted({n.layer for n in neurons}))
    columns = [features.neuron_ids.index(n) for n in neurons]
    stats = compute_neuron_stats(features.select(columns), store.words, store.sentence_offsets, store.labels,
                                 store.label_names, job=printing_job("statistics"))
    for neuron in neurons:
        print(json.dumps(stats.for_neuron(neuron, words=store.words), indent=1))


def _saved_probe_and_corpus(args):
    """The saved probe ``args.probe`` and the labelled corpus ``args.test_set``, checked before any model loads."""
    from .probe import Probe

    if not (Path(args.probe) / "probe.json").exists():
        raise ValueError(f"{args.probe} holds no saved probe (probe.json); save one with 'probe-ablate --save-probe'")
    corpus = read_corpus(Path(args.test_set), args.label_column, args.labels)
    if corpus.labels is None:
        raise ValueError("--probe scores a probe, so the test set must be a labelled corpus (CoNLL-U, or "
                         ".word with --labels)")
    return Probe.load(args.probe), corpus


def _probe_task(probe, corpus, loaded, aggregation: str):
    """The probe's accuracy on the corpus, read through the (ablated) model: model-level ablation of any
    encoder, with or without a masked-LM head."""
    from .manipulation import probe_input_rows
    from .model_ablation import probe_task

    return probe_task(probe, lambda sentences: probe_input_rows(loaded, probe, sentences, aggregation),
                      corpus.sentences, corpus.labels)


def cmd_ablate(args) -> None:
    from .formats import read_test_set
    from .loading import load_model
    from .model_ablation import ablation_curve

    # the test set is read first, by the site's reader and rules, so a bad file is reported before anything loads
    if args.probe:
        probe, corpus = _saved_probe_and_corpus(args)
    else:
        test_set = read_test_set(args.test_set, args.references)
    ranking = Ranking.from_dict(json.loads(Path(args.ranking).read_text(encoding="utf-8")))
    if args.probe:
        loaded = load_model(args.model, half=args.half)
        result = ablation_curve(loaded, ranking, _probe_task(probe, corpus, loaded, args.aggregation),
                                steps=args.steps, job=printing_job("ablation"))
    else:
        loaded = load_model(args.model, half=args.half)
        data = ({"texts": test_set.sources} if test_set.references is None
                else {"sources": test_set.sources, "references": test_set.references})
        result = ablation_curve(loaded, ranking, steps=args.steps, job=printing_job("ablation"), **data)
    primary = result["primary"]
    print(f"\nmodel-level ablation ({result['operation']}), metric {primary}; baseline {result['baseline'][primary]:.4g}")
    orders = list(result["curves"])
    print(f"{'removed':>9} {'%':>6}" + "".join(f"{order:>12}" for order in orders))
    for i, count in enumerate(result["x"]["count"]):
        print(f"{count:>9} {result['x']['percent'][i]:>6.1f}"
              + "".join(f"{result['curves'][order][primary][i]:>12.4g}" for order in orders))
    if args.json:
        Path(args.json).write_text(json.dumps(result), encoding="utf-8")


def _edits(args) -> list:
    from . import interventions

    edits = list(interventions.zero([NeuronId.parse(text) for text in args.zero])) if args.zero else []
    for operation in ("clamp", "scale", "shift"):
        for text in getattr(args, operation) or []:
            neuron, sep, value = text.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = None
            if not sep or number is None:
                raise ValueError(f"--{operation} {text!r}: write NEURON=NUMBER, e.g. --{operation} L3:117=2.5")
            edits.extend(getattr(interventions, operation)([NeuronId.parse(neuron)], number))
    if not edits:
        raise ValueError("choose at least one neuron to change: --zero, --clamp, --scale or --shift")
    return edits


def cmd_manipulate(args) -> None:
    from .formats import read_test_set
    from .loading import load_model
    from .manipulation import manipulate, probe_predictions
    from .probe import Probe

    edits = _edits(args)
    sentences = read_test_set(args.sentences).sources
    if args.probe and not (Path(args.probe) / "probe.json").exists():
        raise ValueError(f"{args.probe} holds no saved probe (probe.json); save one with 'probe-ablate --save-probe'")
    loaded = load_model(args.model, half=args.half)
    job = printing_job("manipulation")
    if args.probe:
        result = probe_predictions(loaded, Probe.load(args.probe), sentences, edits, aggregation=args.aggregation,
                                   job=job)
        for entry in result["sentences"]:
            print(" ".join(f"{w}/{a}" + (f"→{b}" if a != b else "")
                           for w, a, b in zip(entry["words"], entry["original"], entry["manipulated"])))
    else:
        result = manipulate(loaded, sentences, edits, max_new_tokens=args.max_new_tokens, top_k=args.top_k, job=job)
        for entry in result["sentences"]:
            print(" ".join(entry["words"]) + ("  (unchanged)" if entry["identical"] else ""))
            if result["task"] == "fill-mask":
                for mask in entry["masks"]:
                    before = ", ".join(t["token"] for t in mask["original"])
                    after = ", ".join(t["token"] for t in mask["manipulated"])
                    print(f"  word {mask['word']}: {before}  →  {after}")
            else:
                print(f"  original:    {entry['original']['text']}\n  manipulated: {entry['manipulated']['text']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result), encoding="utf-8")


def cmd_export(args) -> None:
    from .interchange import export_activations

    store = _open_store(args.store)
    print(export_activations(store, Path(args.out), neuron_set=args.set))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def add_source(p):
        p.add_argument("model", help="HuggingFace-format model directory (safetensors weights)")
        p.add_argument("corpus", help="CoNLL-U file, or a NeuroX .word file")
        add_extraction_options(p)

    def add_extraction_options(p):
        p.add_argument("--label-column", default="upos", help="CoNLL-U label column (default upos)")
        p.add_argument("--labels", type=Path, help="NeuroX .label file for a .word corpus")
        p.add_argument("--sets", default="hidden,mlp", help="neuron sets to extract (default hidden,mlp)")
        p.add_argument("--aggregation", default="last", choices=("first", "last", "mean"))
        p.add_argument("--max-length", type=int, help="tokens per sequence, below the model's own limit")
        p.add_argument("--cache-dir", default="var/engine", help="where stores are kept (default var/engine)")
        p.add_argument("--half", action="store_true", help="float16 model on a GPU")
        p.add_argument("--max-sentence-words", type=int, help="refuse (or skip) sentences over this many words "
                       "(default 512; 0: no limit)")
        p.add_argument("--skip-long-sentences", action="store_true",
                       help="leave sentences over the limit out, with a warning, instead of refusing the corpus")

    def add_selection(p):
        p.add_argument("--rank-sets", default="hidden", help="neuron sets to rank (default hidden)")
        p.add_argument("--layers", help="comma-separated layers (default: all)")
        p.add_argument("--top", type=int, default=20)
        p.add_argument("--json", help="save the full ranking(s) as JSON")

    p = commands.add_parser("extract", help="extract activations into a store")
    add_source(p)
    p.set_defaults(run=cmd_extract)

    from .methods import METHODS

    p = commands.add_parser("rank", help="rank neurons (extracting first when needed)",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="methods (default bootstrap resamples):\n" + "\n".join(
                                f"  {m.name:<16} {m.description} ({m.bootstrap})" for m in METHODS.values()))
    add_source(p)
    add_selection(p)
    p.add_argument("--method", default="probeless", choices=list(METHODS), help="ranking method (default probeless)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for confidence (0: none; default: the "
                   "method's, listed below)")
    p.add_argument("--eval-corpus", help="lca: also score the probe on this corpus (same label column)")
    p.add_argument("--eval-labels", type=Path, help="NeuroX .label file for a .word eval corpus")
    p.add_argument("--control", action="store_true", help="lca: also train the control task (selectivity)")
    p.add_argument("--l1", type=float, help="lca: the probe's L1 penalty")
    p.add_argument("--l2", type=float, help="lca: the probe's L2 penalty")
    p.add_argument("--epochs", type=int, help="lca: the probe's training epochs")
    p.add_argument("--consensus", nargs="?", const=CONSENSUS_METHODS[0], choices=CONSENSUS_METHODS,
                   help="rank by the consensus over the bootstrap resamples (needs --bootstrap 4 or more): "
                        f"{' or '.join(CONSENSUS_METHODS)} (default {CONSENSUS_METHODS[0]})")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_rank)

    from .crossmodel import METHODS as CROSS_METHODS

    p = commands.add_parser("crossmodel", help="cross-model rankings over two or more models on one corpus")
    p.add_argument("corpus", help="CoNLL-U file, or a NeuroX .word file")
    p.add_argument("models", nargs="+", help="two or more model directories")
    p.add_argument("--methods", default=",".join(CROSS_METHODS),
                   help=f"comma-separated, of {', '.join(CROSS_METHODS)} (default: all)")
    add_extraction_options(p)
    add_selection(p)
    p.set_defaults(run=cmd_crossmodel)

    p = commands.add_parser("concept", help="neurons that detect one label against the rest (binary concept)")
    add_source(p)
    p.add_argument("label", help="the label of the concept, e.g. NOUN")
    add_selection(p)
    p.set_defaults(run=cmd_concept)

    from .probe_ablation import DEFAULT_PERCENTS, MODES

    p = commands.add_parser("probe-ablate", help="probe-level ablation along the lca ranking")
    add_source(p)
    add_selection(p)
    p.add_argument("--percents", default=",".join(f"{x:g}" for x in DEFAULT_PERCENTS),
                   help="shares of the neurons kept (default %(default)s)")
    p.add_argument("--modes", default=",".join(MODES), help=f"of {', '.join(MODES)} (default: both)")
    p.add_argument("--random-seeds", type=int, default=5)
    p.add_argument("--l1", type=float, help="the probe's L1 penalty")
    p.add_argument("--l2", type=float, help="the probe's L2 penalty")
    p.add_argument("--epochs", type=int, help="the probe's training epochs")
    p.add_argument("--save-probe", help="directory to save the trained probe in (for 'ablate --probe')")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_probe_ablate)

    p = commands.add_parser("agree", help="agreement between saved rankings")
    p.add_argument("rankings", nargs="+")
    p.add_argument("--k", default="50")
    p.set_defaults(run=cmd_agree)

    p = commands.add_parser("stats", help="statistics of chosen neurons")
    p.add_argument("store")
    p.add_argument("neurons", nargs="+", help="e.g. L3:117 mlp.L2:5")
    p.set_defaults(run=cmd_stats)

    p = commands.add_parser("ablate", help="model-level ablation curve along a saved ranking")
    p.add_argument("model")
    p.add_argument("ranking", help="ranking JSON saved by 'rank --json'")
    p.add_argument("test_set", help="one sentence (or source sentence) per line; with --probe, a labelled corpus")
    p.add_argument("--references", help="reference translations, line-aligned (encoder-decoder models)")
    p.add_argument("--probe", help="a probe saved by 'probe-ablate --save-probe': measure its accuracy instead "
                   "of the model's own task (any encoder, e.g. one without a masked-LM head)")
    p.add_argument("--label-column", default="upos", help="with --probe: CoNLL-U label column (default upos)")
    p.add_argument("--labels", type=Path, help="with --probe: NeuroX .label file for a .word test set")
    p.add_argument("--aggregation", default="last", choices=("first", "last", "mean"),
                   help="with --probe: the aggregation the probe's activations were extracted with")
    p.add_argument("--steps", type=int, default=11)
    p.add_argument("--half", action="store_true")
    p.add_argument("--json")
    p.set_defaults(run=cmd_ablate)

    p = commands.add_parser("manipulate", help="outputs before and after changing chosen neurons")
    p.add_argument("model")
    p.add_argument("sentences", help="one sentence per line (for a masked LM, write its mask token for a word)")
    p.add_argument("--zero", nargs="+", metavar="NEURON", help="neurons set to 0, e.g. L3:117 mlp.L2:5")
    p.add_argument("--clamp", nargs="+", action="extend", metavar="NEURON=VALUE", help="a neuron held at VALUE")
    p.add_argument("--scale", nargs="+", action="extend", metavar="NEURON=FACTOR", help="a neuron multiplied by FACTOR")
    p.add_argument("--shift", nargs="+", action="extend", metavar="NEURON=AMOUNT", help="AMOUNT added to a neuron")
    p.add_argument("--probe", help="a probe saved by 'probe-ablate --save-probe': show its per-word labels")
    p.add_argument("--aggregation", default="last", choices=("first", "last", "mean"),
                   help="with --probe: the aggregation its activations were extracted with")
    p.add_argument("--max-new-tokens", type=int, default=20)
    p.add_argument("--top-k", type=int, default=5, help="fill-mask: candidates shown per masked word")
    p.add_argument("--half", action="store_true")
    p.add_argument("--json")
    p.set_defaults(run=cmd_manipulate)

    p = commands.add_parser("export", help="export activations in NeuroX formats")
    p.add_argument("store")
    p.add_argument("out", help="FILE.hdf5 or FILE.json (neurox's formats), or FILE.jsonl")
    p.add_argument("--set", default="hidden")
    p.set_defaults(run=cmd_export)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, RuntimeError) as error:  # user-facing errors: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
