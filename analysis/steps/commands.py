"""Pieces of the ``python -m analysis.engine`` command lines (``analysis/engine/cli.py``) that reproduce a result
outside the platform; each step type puts its own command together from these (``StepType.reproduce``)."""

from __future__ import annotations

ENGINE = ["python", "-m", "analysis.engine"]
CACHE_DIR = "var/engine"  # the CLI's default --cache-dir, where ``stats`` finds the store ``extract`` built


def extraction_flags(extraction: dict, corpus: dict) -> list[str]:
    """The CLI's extraction options for the platform's ExtractionParams (the platform reads corpora with no
    sentence-length limit, hence ``--max-sentence-words 0``)."""
    flags = ["--sets", ",".join(extraction.get("neuron_sets", ["hidden"])),
             "--aggregation", extraction.get("aggregation", "last"), "--max-sentence-words", "0"]
    if corpus.get("labels"):
        flags += ["--labels", corpus["labels"]]
    else:
        flags += ["--label-column", extraction.get("label_column", "")]
    if extraction.get("max_length"):
        flags += ["--max-length", str(extraction["max_length"])]
    if extraction.get("dtype") == "float16":
        flags.append("--half")
    return flags


def selection_flags(params: dict) -> list[str]:
    flags = ["--rank-sets", ",".join(params.get("neuron_sets") or ["hidden"])]
    if params.get("layers"):
        flags += ["--layers", ",".join(str(layer) for layer in params["layers"])]
    return flags


def test_set_arguments(pk) -> list[str]:
    """The test set's file (and its references, for a translation model) as the ablate command takes them."""
    from projects.models import TestSetUpload

    test_set = TestSetUpload.objects.filter(pk=pk).first() if pk else None
    if test_set is None:
        return ["./test-set.txt"]
    arguments = [f"./{test_set.metadata.get('source_file') or 'test-set.txt'}"]
    if test_set.metadata.get("reference_file"):
        arguments += ["--references", f"./{test_set.metadata['reference_file']}"]
    return arguments
