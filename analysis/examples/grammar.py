"""A small seeded grammar for the example projects: English-like sentences with gold UPOS, Tense and Number on
every word, and their translation into an invented verb-final language.

The target language differs from the source in the ways the tense-neuron experiment needs (Bau et al., ICLR'19):
- word order: subject, object, then the verb last (SVO → SOV); adjectives and determiners follow their noun;
  prepositions become postpositions;
- the verb's tense and its agreement with the subject's number are **tokens of their own** (``+ra`` present,
  ``+ta`` past; ``+s`` singular, ``+n`` plural), so changing the tense of a translation changes exactly one token;
- plural nouns take a separate ``+ir`` token.

Everything is deterministic for a seed (``random.Random(seed)``, no global state), so the corpora, and the models
trained on them, can be rebuilt exactly. Nothing here imports torch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

PRESENT, PAST = "Pres", "Past"
SINGULAR, PLURAL = "Sing", "Plur"
TENSE_SUFFIX = {PRESENT: "+ra", PAST: "+ta"}
NUMBER_SUFFIX = {SINGULAR: "+s", PLURAL: "+n"}
PLURAL_NOUN = "+ir"

# source lemma → (plural form, target lemma)
NOUNS = {
    "dog": ("dogs", "hund"), "cat": ("cats", "miko"), "bird": ("birds", "fogel"), "teacher": ("teachers", "lerar"),
    "child": ("children", "kind"), "farmer": ("farmers", "bondo"), "doctor": ("doctors", "medik"),
    "horse": ("horses", "perd"), "student": ("students", "skolar"), "king": ("kings", "rejo"),
    "river": ("rivers", "flus"), "house": ("houses", "domo"), "garden": ("gardens", "ort"),
    "city": ("cities", "urbo"), "tree": ("trees", "arbo"), "road": ("roads", "vojo"),
}
ANIMATE = ("dog", "cat", "bird", "teacher", "child", "farmer", "doctor", "horse", "student", "king")
PLACES = ("river", "house", "garden", "city", "tree", "road")
# source lemma → (3rd singular present, past, target stem)
TRANSITIVE = {
    "see": ("sees", "saw", "vid"), "like": ("likes", "liked", "am"), "follow": ("follows", "followed", "sekv"),
    "find": ("finds", "found", "trov"), "help": ("helps", "helped", "help"), "watch": ("watches", "watched", "rigard"),
    "call": ("calls", "called", "vok"), "know": ("knows", "knew", "kon"), "meet": ("meets", "met", "renkont"),
    "push": ("pushes", "pushed", "puŝ"),
}
INTRANSITIVE = {
    "sleep": ("sleeps", "slept", "dorm"), "run": ("runs", "ran", "kur"), "sing": ("sings", "sang", "kant"),
    "wait": ("waits", "waited", "atend"), "laugh": ("laughs", "laughed", "rid"), "fall": ("falls", "fell", "fal"),
}
ADJECTIVES = {"big": "granda", "small": "eta", "old": "maljuna", "young": "juna", "happy": "feliĉa",
              "quiet": "kvieta", "red": "ruĝa", "tired": "laca"}
DETERMINERS = {SINGULAR: {"the": "la", "a": "un", "this": "ĉi"}, PLURAL: {"the": "la", "some": "kelk", "these": "ĉij"}}
PREPOSITIONS = {"near": "apud", "behind": "malantaŭ", "in": "en", "with": "kun"}
ADVERBS = {"often": "ofte", "quietly": "kviete", "slowly": "malrapide"}


@dataclass
class Word:
    form: str
    lemma: str
    upos: str
    feats: dict[str, str] = field(default_factory=dict)
    head: int = 0  # 1-based within the sentence; 0 for the root
    deprel: str = "root"


@dataclass
class Pair:
    """One source sentence (its words, with gold annotation) and its translation (target tokens)."""

    words: list[Word]
    target: list[str]
    tenses: list[str]  # the tense of each clause's verb, in order

    @property
    def source(self) -> list[str]:
        return [w.form for w in self.words]

    def verb_positions(self) -> list[int]:
        """0-based positions of the finite verbs in the source."""
        return [i for i, w in enumerate(self.words) if w.upos == "VERB"]


def _noun_phrase(rng: random.Random, lemma: str, number: str, words: list[Word], head_of_phrase: int | None,
                 deprel: str) -> tuple[int, list[str]]:
    """Append the source words of a noun phrase (det, adjective?, noun); return the noun's 1-based position and
    the phrase in the target language (noun, plural token?, adjective?, determiner)."""
    det = rng.choice(sorted(DETERMINERS[number]))
    adjective = rng.choice(sorted(ADJECTIVES)) if rng.random() < 0.4 else None
    start = len(words) + 1
    noun_at = start + 1 + (adjective is not None)
    words.append(Word(det, det, "DET", {"Number": number} if det in ("this", "these", "a", "some") else {},
                      noun_at, "det"))
    if adjective:
        words.append(Word(adjective, adjective, "ADJ", {}, noun_at, "amod"))
    plural, target_noun = NOUNS[lemma]
    words.append(Word(plural if number == PLURAL else lemma, lemma, "NOUN", {"Number": number},
                      head_of_phrase or 0, deprel))
    target = [target_noun] + ([PLURAL_NOUN] if number == PLURAL else [])
    target += [ADJECTIVES[adjective]] if adjective else []
    return noun_at, target + [DETERMINERS[number][det]]


def _clause(rng: random.Random, words: list[Word], tense: str) -> tuple[int, list[str]]:
    """Append one clause's source words; return its verb's 1-based position and the clause's target tokens.
    The subject's head is set once the verb's position is known (the verb heads the clause)."""
    subject_number = rng.choice((SINGULAR, PLURAL))
    subject_at, subject = _noun_phrase(rng, rng.choice(ANIMATE), subject_number, words, None, "nsubj")
    transitive = rng.random() < 0.6
    lexicon = TRANSITIVE if transitive else INTRANSITIVE
    lemma = rng.choice(sorted(lexicon))
    third_singular, past, stem = lexicon[lemma]
    form = past if tense == PAST else (third_singular if subject_number == SINGULAR else lemma)
    adverb = rng.choice(sorted(ADVERBS)) if rng.random() < 0.25 else None
    words.append(Word(form, lemma, "VERB", {"Tense": tense, "Number": subject_number}, 0, "root"))
    verb_at = len(words)
    target_middle: list[str] = []
    if transitive:
        _, obj = _noun_phrase(rng, rng.choice(ANIMATE), rng.choice((SINGULAR, PLURAL)), words, verb_at, "obj")
        target_middle += obj
    if rng.random() < 0.35:
        preposition = rng.choice(sorted(PREPOSITIONS))
        words.append(Word(preposition, preposition, "ADP", {}, len(words) + 3, "case"))  # fixed below
        case_at = len(words)
        noun_at, place = _noun_phrase(rng, rng.choice(PLACES), rng.choice((SINGULAR, PLURAL)), words, verb_at,
                                      "obl")
        words[case_at - 1].head = noun_at
        target_middle += place + [PREPOSITIONS[preposition]]
    if adverb:
        words.append(Word(adverb, adverb, "ADV", {}, verb_at, "advmod"))
        target_middle.append(ADVERBS[adverb])
    words[subject_at - 1].head = verb_at
    verb = [stem, TENSE_SUFFIX[tense], NUMBER_SUFFIX[subject_number]]
    return verb_at, subject + target_middle + verb


def sentence_pair(rng: random.Random) -> Pair:
    """One sentence of one or two clauses joined by "and", each with its own tense."""
    words: list[Word] = []
    tenses = [rng.choice((PRESENT, PAST))]
    first_verb, target = _clause(rng, words, tenses[0])
    if rng.random() < 0.2:
        words.append(Word("and", "and", "CCONJ", {}, 0, "cc"))
        and_at = len(words)
        tenses.append(rng.choice((PRESENT, PAST)))
        second_verb, second = _clause(rng, words, tenses[1])
        words[second_verb - 1].head, words[second_verb - 1].deprel = first_verb, "conj"
        words[and_at - 1].head = second_verb
        target = target + ["kaj"] + second
    words.append(Word(".", ".", "PUNCT", {}, first_verb, "punct"))
    return Pair(words=words, target=target + ["."], tenses=tenses)


def generate(n: int, seed: int) -> list[Pair]:
    """``n`` sentence pairs, the same for the same seed."""
    rng = random.Random(seed)
    return [sentence_pair(rng) for _ in range(n)]


def with_tense(target: list[str], tense: str) -> list[str]:
    """The translation with every tense token set to ``tense`` (what a successful tense flip must produce)."""
    suffixes = set(TENSE_SUFFIX.values())
    return [TENSE_SUFFIX[tense] if token in suffixes else token for token in target]


def to_conllu(pairs: list[Pair]) -> str:
    """The source side as CoNLL-U: UPOS, FEATS (Tense, Number), heads and relations, the translation as a
    comment."""
    blocks = []
    for number, pair in enumerate(pairs, start=1):
        lines = [f"# sent_id = {number}", f"# text = {' '.join(pair.source)}",
                 f"# translation = {' '.join(pair.target)}"]
        for i, w in enumerate(pair.words, start=1):
            feats = "|".join(f"{k}={v}" for k, v in sorted(w.feats.items())) or "_"
            lines.append("\t".join((str(i), w.form, w.lemma, w.upos, "_", feats, str(w.head), w.deprel, "_", "_")))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n\n"
