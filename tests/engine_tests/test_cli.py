"""The command line: a person runs it on a model directory and a corpus file and reads a ranking with intervals."""

import json

import pytest

from analysis.engine.cli import main
from tests.support.tiny_models import tiny_model_dir

CONLLU = """# sent_id = 1
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsleeps\tsleep\tVERB\tVBZ\t_\t0\troot\t_\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2
1\tA\ta\tDET\tDT\t_\t2\tdet\t_\t_
2\tdog\tdog\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\truns\trun\tVERB\tVBZ\t_\t0\troot\t_\t_
4\t!\t!\tPUNCT\t.\t_\t3\tpunct\t_\t_

"""


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "toy.conllu"
    path.write_text(CONLLU * 10, encoding="utf-8")
    return path


def test_rank_prints_a_ranking_with_confidence_and_reuses_the_store(tmp_path, corpus_file, capsys):
    model = tiny_model_dir("bert")
    args = ["rank", str(model), str(corpus_file), "--cache-dir", str(tmp_path / "cache"), "--method", "probeless",
            "--bootstrap", "4", "--top", "5", "--json", str(tmp_path / "ranking.json")]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "probeless ranking of 96 neurons" in captured.out  # 3 hidden layers (embeddings + 2 blocks) × 32
    assert "90% rank interval" in captured.out
    assert "top-k stability over 4 bootstrap resamples" in captured.out
    assert "NOUN" in captured.out  # per-label sub-rankings
    saved = json.loads((tmp_path / "ranking.json").read_text())
    assert len(saved["order"]) == 96 and saved["confidence"]["n_boot"] == 4

    assert main(args) == 0  # second run: the store is reused, not extracted again
    assert "already complete; reusing it" in capsys.readouterr().err


def test_extract_reuses_the_store_of_the_same_request_and_keeps_the_others(tmp_path, corpus_file, capsys):
    model = tiny_model_dir("bert")
    base = ["extract", str(model), str(corpus_file), "--cache-dir", str(tmp_path / "cache"), "--sets", "hidden"]
    stores = tmp_path / "cache" / "stores"

    def run(*extra):
        assert main(base + list(extra)) == 0
        return capsys.readouterr().err

    first = run("--max-length", "8")
    assert "extraction finished" in first
    (short,) = stores.iterdir()
    mtimes = {p.name: p.stat().st_mtime_ns for p in short.iterdir()}
    assert "extraction finished" in run()  # another max_length: a second store beside the first
    assert "extraction finished" in run("--aggregation", "first")
    assert len(list(stores.iterdir())) == 3
    import torch

    # --half runs float16 on a GPU (its own store); on a CPU it runs float32, so it reuses the default store
    on_gpu = torch.cuda.is_available()
    assert ("extraction finished" if on_gpu else "already complete; reusing it") in run("--half")
    assert len(list(stores.iterdir())) == 3 + on_gpu
    again = run("--max-length", "8")
    assert "already complete; reusing it" in again and "model:" not in again  # no weights were loaded
    assert {p.name: p.stat().st_mtime_ns for p in short.iterdir()} == mtimes  # nothing was rewritten or evicted


def test_agree_compares_saved_rankings(tmp_path, corpus_file, capsys):
    model = tiny_model_dir("bert")
    for method in ("probeless", "anova"):
        assert main(["rank", str(model), str(corpus_file), "--cache-dir", str(tmp_path / "cache"), "--method",
                     method, "--bootstrap", "0", "--json", str(tmp_path / f"{method}.json")]) == 0
    capsys.readouterr()
    assert main(["agree", str(tmp_path / "probeless.json"), str(tmp_path / "anova.json"), "--k", "10"]) == 0
    out = capsys.readouterr().out
    assert "agreement of the top-10" in out and "anova" in out


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.conllu"
    bad.write_text("1\tThe\tthe\tDET\n", encoding="utf-8")
    assert main(["rank", str(tiny_model_dir("bert")), str(bad), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad.conllu, line 1:")


def test_ablate_stats_and_export_on_a_ranked_store(tmp_path, corpus_file, capsys):
    model = tiny_model_dir("gpt2")
    assert main(["rank", str(model), str(corpus_file), "--cache-dir", str(tmp_path / "cache"), "--method", "variance",
                 "--bootstrap", "0", "--json", str(tmp_path / "ranking.json")]) == 0
    (store,) = (tmp_path / "cache" / "stores").iterdir()
    capsys.readouterr()

    test_set = tmp_path / "test.txt"
    test_set.write_text("the cat sleeps .\na dog runs !\n", encoding="utf-8")
    assert main(["ablate", str(model), str(tmp_path / "ranking.json"), str(test_set), "--steps", "3",
                 "--json", str(tmp_path / "curve.json")]) == 0
    out = capsys.readouterr().out
    assert "model-level ablation (zero), metric loss" in out
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert curve["x"]["count"][0] == 0 and curve["x"]["count"][-1] == 96 and set(curve["curves"]) == {"top", "bottom"}

    assert main(["stats", str(store), "L1:3"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["neuron"] == "L1:3" and len(stats["top_words"]) > 0

    assert main(["export", str(store), str(tmp_path / "acts.hdf5")]) == 0
    import h5py

    with h5py.File(tmp_path / "acts.hdf5") as exported:
        assert exported["0"].shape == (3, 4, 32)  # layers × words × dim of the first sentence


EVAL_CONLLU = """# sent_id = e1
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tbig\tbig\tADJ\tJJ\t_\t3\tamod\t_\t_
3\tcat\tcat\tNOUN\tNN\t_\t4\tnsubj\t_\t_
4\truns\trun\tVERB\tVBZ\t_\t0\troot\t_\t_

"""


def test_rank_scores_the_probe_on_an_eval_corpus_with_another_label_set(tmp_path, corpus_file, capsys):
    # the eval corpus has no PUNCT (so its ids shift) and an ADJ the probe never saw
    eval_corpus = tmp_path / "eval.conllu"
    eval_corpus.write_text(EVAL_CONLLU * 5, encoding="utf-8")
    args = ["rank", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache"),
            "--method", "lca", "--layers", "2", "--bootstrap", "0", "--eval-corpus", str(eval_corpus),
            "--json", str(tmp_path / "lca.json")]
    assert main(args) == 0
    captured = capsys.readouterr()
    held_out = json.loads((tmp_path / "lca.json").read_text())["metrics"]["held_out"]
    assert held_out["n_words"] == 15 and held_out["unknown_labels"] == {"ADJ": 5}
    assert f"eval corpus accuracy: {held_out['accuracy']:.4f} on 15 words" in captured.out
    assert "labels the probe never saw: 5 — ADJ (5)" in captured.out
    assert "  majority accuracy: " in captured.out  # the baseline next to the probe's accuracies
    assert "lca: 100/100 epochs (100 %)" in captured.err  # the printing job: (4 L2 values + refit) × 20 epochs

    stores = sorted((tmp_path / "cache" / "stores").iterdir())
    assert len(stores) == 2  # the training corpus's and the eval corpus's

    other = tmp_path / "other.conllu"
    other.write_text(CONLLU, encoding="utf-8")
    refused = args[:2] + [str(other), "--cache-dir", str(tmp_path / "cache"), "--method", "probeless",
                          "--eval-corpus", str(eval_corpus)]
    assert main(refused) == 2
    assert "error: --eval-corpus scores a probe, and probeless trains none" in capsys.readouterr().err
    assert sorted((tmp_path / "cache" / "stores").iterdir()) == stores  # refused before anything is extracted


def test_rank_passes_the_probe_options_to_lca(tmp_path, corpus_file, capsys):
    model = tiny_model_dir("bert")
    base = ["rank", str(model), str(corpus_file), "--cache-dir", str(tmp_path / "cache"), "--method", "lca",
            "--bootstrap", "0", "--layers", "1", "--epochs", "2", "--l2", "0"]
    assert main(base + ["--l1", "0", "--json", str(tmp_path / "dense.json")]) == 0
    assert main(base + ["--l1", "0.5", "--json", str(tmp_path / "sparse.json")]) == 0
    capsys.readouterr()
    dense = json.loads((tmp_path / "dense.json").read_text())
    sparse = json.loads((tmp_path / "sparse.json").read_text())
    assert dense["params"]["l1"] == 0 and sparse["params"]["l1"] == 0.5
    assert dense["params"]["epochs"] == sparse["params"]["epochs"] == 2


@pytest.mark.parametrize("extra, message", [
    (["--method", "anova", "--l1", "0.1"], "error: --l1 set(s) lca's probe, and anova trains none: use --method lca"),
    (["--method", "lca", "--epochs", "0"], "error: --epochs must be at least 1, not 0"),
    (["--method", "lca", "--l2", "-1"], "error: --l2 must be 0 or more, not -1.0"),
])
def test_rank_refuses_bad_probe_options_before_extracting(tmp_path, corpus_file, capsys, extra, message):
    args = ["rank", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache")]
    assert main(args + extra) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "cache").exists()


def test_rank_consensus_orders_by_the_resamples_and_needs_enough_of_them(tmp_path, corpus_file, capsys):
    base = ["rank", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache"),
            "--method", "anova", "--consensus"]
    assert main(base + ["--bootstrap", "3"]) == 2
    assert "--consensus is built from bootstrap resamples: add --bootstrap 4 or more" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()
    json_path = tmp_path / "consensus.json"
    assert main(base + ["--bootstrap", "4", "--json", str(json_path)]) == 0
    consensus = json.loads(json_path.read_text())["confidence"]["consensus"]
    assert consensus["method"] == "mean_rank"


def test_long_sentences_are_refused_by_name_or_skipped_with_a_warning(tmp_path, corpus_file, capsys):
    args = ["extract", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache"),
            "--sets", "hidden", "--max-sentence-words", "3"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        "error: toy.conllu, line 2: sentence 1 (line 2) has 4 words; the limit is 3 (raise the limit, or skip "
        "such sentences)")
    short = tmp_path / "mixed.conllu"
    short.write_text(CONLLU.split("\n\n")[0] + "\n\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n", encoding="utf-8")
    assert main(args[:2] + [str(short)] + args[3:] + ["--skip-long-sentences"]) == 0
    captured = capsys.readouterr()
    assert "warning: mixed.conllu: 1 sentence(s) over the 3-word limit were skipped: sentence 1 (line 2) has 4 " \
           "words" in captured.err
    assert "1 words, 1 sentences" in captured.out


def test_crossmodel_ranks_the_neurons_of_each_model(tmp_path, corpus_file, capsys):
    models = [str(tiny_model_dir("bert")), str(tiny_model_dir("llama"))]
    assert main(["crossmodel", str(corpus_file), *models, "--cache-dir", str(tmp_path / "cache"), "--sets",
                 "hidden", "--layers", "1", "--methods", "maxcorr,linreg", "--top", "3",
                 "--json", str(tmp_path / "cross.json")]) == 0
    out = capsys.readouterr().out
    assert "maxcorr — model bert" in out and "linreg — model llama" in out
    assert "maxcorr ranking of 32 neurons" in out
    saved = json.loads((tmp_path / "cross.json").read_text())
    assert sorted(saved) == ["linreg", "maxcorr"] and sorted(saved["maxcorr"]) == ["bert", "llama"]


def test_crossmodel_refuses_one_model_and_an_unknown_method(tmp_path, corpus_file, capsys):
    model = str(tiny_model_dir("bert"))
    assert main(["crossmodel", str(corpus_file), model, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: cross-model rankings compare models: give at least two model directories")
    assert main(["crossmodel", str(corpus_file), model, model, "--cache-dir", str(tmp_path / "cache"),
                 "--sets", "hidden", "--methods", "maxcor"]) == 2
    assert "unknown cross-model methods ['maxcor']: use maxcorr, mincorr, linreg, svcca" in capsys.readouterr().err


def test_concept_ranks_detectors_of_one_label(tmp_path, corpus_file, capsys):
    args = ["concept", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache"),
            "--sets", "hidden"]
    assert main(args + ["NOUN", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "neurons detecting NOUN (average precision; chance 0.250)" in out
    assert "binary_concept_ap ranking of 96 neurons" in out
    assert main(args + ["ADV"]) == 2
    assert "unknown label 'ADV'; known labels: DET, NOUN, PUNCT, VERB" in capsys.readouterr().err


def test_probe_ablate_prints_top_random_bottom_and_saves_the_probe(tmp_path, corpus_file, capsys):
    args = ["probe-ablate", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache"),
            "--sets", "hidden", "--layers", "1", "--percents", "25,100", "--modes", "zero_out",
            "--random-seeds", "2", "--epochs", "3", "--save-probe", str(tmp_path / "probe"),
            "--json", str(tmp_path / "ablation.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "probe ablation over 32 neurons; full probe" in out
    assert "zero_out:  kept %       top    random    bottom" in out
    assert (tmp_path / "probe" / "probe.json").exists()
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert saved["n_neurons"] == 32 and {p["percent"] for p in saved["points"]} == {25, 100}


def test_probe_ablate_refuses_bad_percents_and_modes(tmp_path, corpus_file, capsys):
    base = ["probe-ablate", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache"),
            "--sets", "hidden", "--layers", "1", "--epochs", "2"]
    assert main(base + ["--percents", "0,50"]) == 2
    assert "--percents are shares of the neurons kept, each in (0, 100]: got 0,50" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()
    assert main(base + ["--modes", "melt", "--percents", "50"]) == 2
    assert "unknown ablation modes ['melt']" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


@pytest.fixture
def headless_encoder(tmp_path):
    """The tiny BERT without its masked-LM head: the model's own task cannot be measured, a probe's can."""
    import shutil

    from transformers import BertConfig, BertModel

    source = tiny_model_dir("bert")
    path = tmp_path / "headless"
    shutil.copytree(source, path)
    (path / "model.safetensors").unlink()
    config = BertConfig.from_pretrained(source)
    config.architectures = ["BertModel"]
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    return path


def test_ablate_an_encoder_without_a_head_through_a_saved_probe(tmp_path, corpus_file, headless_encoder, capsys):
    cache = ["--cache-dir", str(tmp_path / "cache"), "--sets", "hidden", "--layers", "1"]
    assert main(["probe-ablate", str(headless_encoder), str(corpus_file), *cache, "--percents", "100", "--modes",
                 "zero_out", "--random-seeds", "1", "--epochs", "3", "--save-probe", str(tmp_path / "probe")]) == 0
    assert main(["rank", str(headless_encoder), str(corpus_file), *cache, "--method", "lca", "--epochs", "3",
                 "--bootstrap", "0", "--json", str(tmp_path / "ranking.json")]) == 0
    capsys.readouterr()
    ablate = ["ablate", str(headless_encoder), str(tmp_path / "ranking.json")]
    plain = tmp_path / "test.txt"
    plain.write_text("the cat sleeps .\na dog runs !\n", encoding="utf-8")
    assert main(ablate + [str(plain)]) == 2  # the model's own task: refused, pointing at the alternative
    assert "no masked-LM head; measure a trained probe's accuracy instead" in capsys.readouterr().err
    assert main(ablate + [str(corpus_file), "--steps", "3", "--probe", str(tmp_path / "probe"), "--json", str(tmp_path / "curve.json")]) == 0
    out = capsys.readouterr().out
    assert "model-level ablation (zero), metric accuracy" in out
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert curve["task"] == "probe" and curve["x"]["count"][-1] == 32
    assert curve["curves"]["top"]["accuracy"][0] > 0.5


def test_ablate_with_a_probe_refuses_a_missing_probe_and_an_unlabelled_test_set(tmp_path, corpus_file, capsys):
    ranking = tmp_path / "ranking.json"
    assert main(["rank", str(tiny_model_dir("bert")), str(corpus_file), "--cache-dir", str(tmp_path / "cache"),
                 "--sets", "hidden", "--method", "variance", "--bootstrap", "0", "--json", str(ranking)]) == 0
    capsys.readouterr()
    assert main(["ablate", str(tiny_model_dir("bert")), str(ranking), str(corpus_file), "--probe",
                 str(tmp_path / "nowhere")]) == 2
    assert "nowhere holds no saved probe (probe.json); save one with 'probe-ablate --save-probe'" in \
        capsys.readouterr().err


def test_manipulate_shows_text_before_and_after(tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("the cat sat on the\n", encoding="utf-8")
    args = ["manipulate", str(tiny_model_dir("gpt2")), str(sentences), "--max-new-tokens", "4",
            "--json", str(tmp_path / "m.json")]
    assert main(args + ["--scale", "L1:0=1"]) == 0  # scaling by 1 changes nothing
    assert "(unchanged)" in capsys.readouterr().out
    assert main(args + ["--clamp", *[f"L2:{u}=50" for u in range(32)]]) == 0
    out = capsys.readouterr().out
    assert "original:" in out and "manipulated:" in out
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["task"] == "generation" and len(saved["edits"]) == 32


def test_manipulate_fill_mask_and_bad_edits(tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("the [MASK] sat on the mat\n", encoding="utf-8")
    model = str(tiny_model_dir("bert"))
    assert main(["manipulate", model, str(sentences), "--zero", "L1:0", "L1:1", "--top-k", "2"]) == 0
    assert "word 1:" in capsys.readouterr().out
    assert main(["manipulate", model, str(sentences), "--clamp", "L1:0"]) == 2
    assert "--clamp 'L1:0': write NEURON=NUMBER, e.g. --clamp L3:117=2.5" in capsys.readouterr().err
    assert main(["manipulate", model, str(sentences)]) == 2
    assert "choose at least one neuron to change: --zero, --clamp, --scale or --shift" in capsys.readouterr().err
