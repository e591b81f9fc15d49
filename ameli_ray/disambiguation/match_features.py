"""Explicit match features of a (review, candidate) pair: what the text stream's head reads beside
the cross-encoder.

A cross-encoder fine-tuned for minutes on a CPU does not learn that "NN-SD377S" in a product
name and "NNSD377SS" in a review are the same model, or that "1.6 cu. ft." rules out a 2.2 cu.
ft. oven; a subword tokenizer splits both into pieces that carry no identity. These features
state such facts directly, per candidate, from the same text and the same attribute keys the
statements use:

    review_code_hits   share of the review's model codes found in the candidate's text
    candidate_code_hits share of the candidate's codes (name and attributes) found in the review
    review_has_codes, candidate_has_codes   0/1, so "no code to compare" differs from "no hit"
    name_coverage      share of the candidate name's tokens found in the review
    surface_coverage   share of the mention's surface (how it names the product) found in the candidate
    number_coverage    share of the numbers in the candidate's name found in the review
    per statement slot: present (0/1), value_coverage (share of the value's tokens in the review)

A code is a token of the lexical tokenizer (separators joined: "NN-SD377S" -> "nnsd377s") of at
least four characters mixing letters and digits, or a run of at least six digits (UPCs); codes
are compared as substrings of the text in `compact` form (the attribute matcher's identifier
form: folded, separators removed), so that "R-1214" finds "R1214SS". All values lie in [0, 1]. Pure Python; the training examples and the
disambiguator call the same function, so a model is scored on the features it was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ameli_ray.attributes.normalize import compact, normalize_key
from ameli_ray.disambiguation.statements import entity_values
from ameli_ray.retrieval.lexical import tokenize
from ameli_ray.schema import Entity

__all__ = ["CANDIDATE_FEATURES", "SLOT_FEATURES", "match_features", "n_match_features"]

CANDIDATE_FEATURES = (
    "review_code_hits", "candidate_code_hits", "review_has_codes", "candidate_has_codes",
    "name_coverage", "surface_coverage", "number_coverage",
)
SLOT_FEATURES = ("present", "value_coverage")

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[a-z]")


def n_match_features(statements: int) -> int:
    return len(CANDIDATE_FEATURES) + len(SLOT_FEATURES) * statements


def _is_code(token: str) -> bool:
    if token.isdigit():
        return len(token) >= 6
    return len(token) >= 4 and bool(_HAS_DIGIT.search(token)) and bool(_HAS_LETTER.search(token))


@lru_cache(maxsize=65_536)
def _text_view(text: str) -> tuple[frozenset[str], frozenset[str], str, frozenset[str]]:
    """(tokens, codes, compact text, numbers) of a text; cached: a review is compared with ten
    candidates and a product appears in many candidate lists."""
    tokens = tokenize(text)
    return (
        frozenset(tokens), frozenset(t for t in tokens if _is_code(t)), compact(text),
        frozenset(_NUMBER.findall(text.lower())),
    )


def _share(needles: Sequence[str] | frozenset[str], found) -> float:
    return sum(1 for n in needles if found(n)) / len(needles) if needles else 0.0


def _candidate_text(entity: Entity) -> str:
    return " ".join([entity.name, *entity.attributes.values(), entity.description])


def match_features(
    review: str, surface: str, entities: Sequence[Entity], keys: Sequence[str], statements: int | None = None
) -> np.ndarray:
    """float32 [len(entities), n_match_features(statements)]: one row per candidate, the slot
    features in the order of `keys` (the statement keys `choose_keys` picked for the mention);
    slots past the keys (up to `statements`, default len(keys)) stay zero, like absent values."""
    statements = len(keys) if statements is None else statements
    if len(keys) > statements:
        raise ValueError(f"{len(keys)} statement keys for {statements} slots")
    r_tokens, r_codes, r_compact, r_numbers = _text_view(review)
    s_tokens = tokenize(surface)
    out = np.zeros((len(entities), n_match_features(statements)), dtype=np.float32)
    for row, entity in enumerate(entities):
        c_tokens, _, c_compact, _ = _text_view(_candidate_text(entity))
        _, c_codes, _, _ = _text_view(" ".join([entity.name, *entity.attributes.values()]))
        n_tokens, _, _, n_numbers = _text_view(entity.name)
        out[row, : len(CANDIDATE_FEATURES)] = (
            _share(r_codes, lambda c: c in c_compact),
            _share(c_codes, lambda c: c in r_compact),
            float(bool(r_codes)),
            float(bool(c_codes)),
            _share(n_tokens, r_tokens.__contains__),
            _share(s_tokens, c_tokens.__contains__),
            _share(n_numbers, r_numbers.__contains__),
        )
        held = entity_values(entity)
        for slot, key in enumerate(keys):
            found = held.get(normalize_key(key))
            if found is None:
                continue
            v_tokens, _, _, _ = _text_view(found[1])
            at = len(CANDIDATE_FEATURES) + len(SLOT_FEATURES) * slot
            out[row, at] = 1.0
            out[row, at + 1] = _share(v_tokens, r_tokens.__contains__)
    return out
