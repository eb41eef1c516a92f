"""The example projects' grammar: deterministic, gold-annotated, and a translation whose tense is one token."""

import conllu

from analysis.engine.formats import read_conllu
from analysis.examples.grammar import PAST, PRESENT, TENSE_SUFFIX, generate, to_conllu, with_tense


def test_the_same_seed_gives_the_same_corpus_and_another_seed_another():
    assert [p.source for p in generate(50, seed=3)] == [p.source for p in generate(50, seed=3)]
    assert [p.target for p in generate(50, seed=3)] == [p.target for p in generate(50, seed=3)]
    assert [p.source for p in generate(50, seed=3)] != [p.source for p in generate(50, seed=4)]


def test_every_clause_has_one_finite_verb_with_tense_and_number_and_one_tense_token_in_the_translation():
    for pair in generate(300, seed=0):
        verbs = [pair.words[i] for i in pair.verb_positions()]
        assert [v.feats["Tense"] for v in verbs] == pair.tenses
        assert all(v.feats["Number"] in ("Sing", "Plur") for v in verbs)
        tense_tokens = [t for t in pair.target if t in TENSE_SUFFIX.values()]
        assert tense_tokens == [TENSE_SUFFIX[t] for t in pair.tenses]
        assert pair.target[-1] == "." and pair.source[-1] == "."


def test_the_translation_is_verb_final_within_each_clause():
    for pair in generate(300, seed=1):
        clauses = " ".join(pair.target[:-1]).split(" kaj ")
        for clause in clauses:
            tokens = clause.split()
            assert tokens[-2] in TENSE_SUFFIX.values() and tokens[-1] in ("+s", "+n")


def test_past_verbs_differ_from_present_ones_in_the_source():
    pairs = generate(500, seed=2)
    forms = {(w.lemma, w.feats["Tense"]): w.form for p in pairs for w in p.words if w.upos == "VERB"
             and w.feats["Number"] == "Sing"}
    assert forms[("see", PRESENT)] == "sees" and forms[("see", PAST)] == "saw"


def test_with_tense_changes_only_the_tense_tokens():
    pair = next(p for p in generate(100, seed=0) if p.tenses == [PRESENT])
    flipped = with_tense(pair.target, PAST)
    changed = [i for i, (a, b) in enumerate(zip(pair.target, flipped)) if a != b]
    assert len(changed) == 1 and flipped[changed[0]] == TENSE_SUFFIX[PAST]


def test_the_conllu_reads_back_with_every_label_column_and_valid_trees(tmp_path):
    pairs = generate(200, seed=0)
    path = tmp_path / "grammar.conllu"
    path.write_text(to_conllu(pairs), encoding="utf-8")
    upos = read_conllu(path, "upos")
    assert upos.sentences == [p.source for p in pairs]
    assert set(upos.label_names()) >= {"DET", "NOUN", "VERB", "ADJ"}
    tense = read_conllu(path, "feats:Tense")
    assert tense.label_names() == ["Past", "Pres"]
    assert [label for sentence in tense.labels for label in sentence if label] == [
        w.feats["Tense"] for p in pairs for w in p.words if "Tense" in w.feats]
    for sentence in conllu.parse(path.read_text(encoding="utf-8")):
        assert sentence.to_tree().token["deprel"] == "root"  # one root; every head inside the sentence
