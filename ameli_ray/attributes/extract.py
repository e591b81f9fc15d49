"""Attribute values a review states (text and OCR of its photos), and how they bear on candidates.

`extract_attributes` runs the vocabulary matcher over the review text and over the joined OCR
lines. `agreement` / `agreement_scores` compare what was extracted with an entity's attributes:

- an extracted value AGREES with an entity that has the same key with the same normalised value,
  or a compatible one: the same identifier without separators, a colour-family guess of the
  entity's family, a bare family word ("blue") for a colour of that family (×0.6), or a value
  contained token-wise in the other ("black" / "onyx black", ×0.8);
- it CONTRADICTS when the entity has the key with an incompatible value (a colour-family guess
  contradicts only an entity colour of a known, different family);
- keys the entity lacks neither agree nor contradict.

Scoring counts each key once: its best agreeing confidence if anything extracted for it agrees,
else minus its best contradicting confidence. A key is contradicted only when nothing extracted
for it agrees, so a review that compares "the 128GB one I almost bought" with the 256GB it has
does not rule out the 256GB product. score = sum over the entity's keys.
"""

from __future__ import annotations

import bisect
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ameli_ray.attributes.normalize import (
    FAMILY_WORDS,
    base_color,
    compact,
    is_color_key,
    is_model_key,
    normalize_key,
    normalize_value,
)
from ameli_ray.attributes.vocabulary import AttributeMatch, AttributeVocabulary

__all__ = [
    "AttributeAgreement",
    "ExtractedAttribute",
    "agreement",
    "agreement_scores",
    "extract_attributes",
    "predicted_attributes",
    "prepare_agreement",
    "relation",
]

AGREE, NEUTRAL, CONTRADICT = 1, 0, -1
FAMILY_WORD_FACTOR = 0.6  # "blue" for "Midnight Blue": right family, but not the value itself
CONTAINED_FACTOR = 0.8  # "black" for "Onyx Black", "Windows 11" for "Windows 11 Pro"
_KIND_RANK = {"exact": 0, "alias": 1, "compact": 2, "family": 3}
_DECIMAL = re.compile(r"\d\.\d")


@dataclass(frozen=True)
class ExtractedAttribute:
    key: str  # canonical key (normalize_key); other spellings are accepted wherever it is read
    value: str  # normalised value
    surface: str  # as written
    source: str  # "text" | "ocr" (| "gold" for the gold-attribute ablation)
    start: int  # offsets in the review text, or in the OCR lines joined with "\n"
    end: int
    confidence: float
    kind: str = "exact"  # "exact" | "alias" | "compact" | "family"


@dataclass
class AttributeAgreement:
    agree: list[ExtractedAttribute] = field(default_factory=list)
    contradict: list[ExtractedAttribute] = field(default_factory=list)
    score: float = 0.0

    @property
    def contradicted(self) -> bool:
        return bool(self.contradict)


# -- extraction ----------------------------------------------------------------------------------
def _from_match(m: AttributeMatch, source: str, confidence: float) -> ExtractedAttribute:
    return ExtractedAttribute(m.key, m.value, m.surface, source, m.start, m.end, confidence, m.kind)


def extract_attributes(
    text: str,
    ocr_texts: Sequence[tuple[str, float]],
    vocab: AttributeVocabulary,
    *,
    categories: Sequence[str] | None = None,
    candidate_rows: Sequence[int] | None = None,
) -> list[ExtractedAttribute]:
    """Values stated in the review text (source "text") and in its OCR lines (source "ocr").

    OCR matches take the confidence of the weakest line they span, multiplied in; their offsets
    index the lines joined with "\\n". The same (key, value) is kept once per source, at its most
    confident. `categories` limits values to those categories' entities; `candidate_rows` keeps
    only values that agree with at least one of these entities (the paper matches extracted
    values back to the attribute values of the top-K candidates).
    """
    found: list[ExtractedAttribute] = []
    if text:
        found.extend(_from_match(m, "text", m.confidence) for m in vocab.match(text, categories))
    lines = [(t or "", float(c)) for t, c in ocr_texts]
    if any(t for t, _ in lines):
        joined = "\n".join(t for t, _ in lines)
        starts: list[int] = []
        pos = 0
        for line, _ in lines:
            starts.append(pos)
            pos += len(line) + 1
        for m in vocab.match(joined, categories):
            first = bisect.bisect_right(starts, m.start) - 1
            last = bisect.bisect_right(starts, max(m.end - 1, m.start)) - 1
            line_conf = min(c for _, c in lines[first : last + 1])
            found.append(_from_match(m, "ocr", m.confidence * max(0.0, min(1.0, line_conf))))
    best: dict[tuple[str, str, str], ExtractedAttribute] = {}
    for a in found:
        k = (a.source, a.key, a.value)
        if k not in best or a.confidence > best[k].confidence:
            best[k] = a
    out = sorted(best.values(), key=lambda a: (a.source != "text", a.start, -a.confidence, a.key, a.value))
    if candidate_rows is not None:
        out = _agreeing_any(out, candidate_rows, vocab)
    return out


def _agreeing_any(extracted: list[ExtractedAttribute], rows: Sequence[int],
                  vocab: AttributeVocabulary) -> list[ExtractedAttribute]:
    if not len(rows) or not extracted:
        return []
    key_ids = sorted({vocab.key_id(a.key) for a in extracted} - {-1})
    col = {k: j for j, k in enumerate(key_ids)}
    ev = vocab.entity_value_ids(rows, key_ids)
    out = []
    for a in extracted:
        kid = vocab.key_id(a.key)
        if kid < 0:
            continue
        present = [vocab.values[int(v)] for v in np.unique(ev[:, col[kid]]) if v >= 0]
        if a.kind == "family":  # a guess names candidate values themselves, or nothing
            keep = a.value in present
        else:
            keep = any(relation(vocab.keys[kid], a.value, v, a.kind)[0] == AGREE for v in present)
        if keep:
            out.append(a)
    return out


def predicted_attributes(
    extracted: Sequence[ExtractedAttribute],
    sources: Sequence[str] | None = None,
    min_confidence: float = 0.0,
) -> dict[str, str]:
    """One value per key, for attribute P/R: the most confident (then exact before guesses,
    earlier before later, longer before shorter). When the best are colour-family guesses, a
    single guess is reported as is; several are reported as their family ("blue"), which is what
    the review states, rather than an arbitrary one of them."""
    best: dict[str, ExtractedAttribute] = {}
    guesses: dict[str, set[str]] = {}

    def rank(a: ExtractedAttribute) -> tuple[float, int, int, int]:
        return (-a.confidence, _KIND_RANK.get(a.kind, 9), a.start, -len(a.value))

    for a in extracted:
        if (sources is not None and a.source not in sources) or a.confidence < min_confidence:
            continue
        if a.key not in best or rank(a) < rank(best[a.key]):
            best[a.key] = a
        if a.kind == "family":
            guesses.setdefault(a.key, set()).add(a.value)
    out: dict[str, str] = {}
    for k, a in best.items():
        if a.kind == "family" and len(guesses[k]) > 1:
            out[k] = base_color(a.value) or a.value
        else:
            out[k] = a.value
    return out


# -- agreement -----------------------------------------------------------------------------------
def _compact_comparable(value: str) -> bool:
    return any(c.isalpha() for c in value) and any(c.isdigit() for c in value) and not _DECIMAL.search(value)


@lru_cache(maxsize=1 << 12)
def _key_kind(key: str) -> tuple[bool, bool]:
    """(identifier key, colour key) of a canonical key."""
    return is_model_key(key), is_color_key(key)


@lru_cache(maxsize=1 << 18)
def _relation(model_key: bool, colour_key: bool, x: str, y: str, family_guess: bool) -> tuple[int, float]:
    """`relation` on normalised values."""
    if not x or not y:
        return NEUTRAL, 0.0
    if x == y:
        return AGREE, 1.0
    if (model_key or (_compact_comparable(x) and _compact_comparable(y))) and compact(x) == compact(y):
        return AGREE, 1.0
    if colour_key and (family_guess or x in FAMILY_WORDS):
        fx, fy = base_color(x), base_color(y)
        if fy is None:
            return NEUTRAL, 0.0  # an unknown colour name cannot be told apart from a family
        if fx == fy:
            return AGREE, 1.0 if family_guess else FAMILY_WORD_FACTOR
        return CONTRADICT, 1.0
    if f" {x} " in f" {y} " or f" {y} " in f" {x} ":
        return AGREE, CONTAINED_FACTOR
    return CONTRADICT, 1.0


def relation(key: str, extracted: str, entity: str, kind: str = "exact") -> tuple[int, float]:
    """(AGREE | NEUTRAL | CONTRADICT, confidence factor) of an extracted value against an entity's
    value of the same key; key and values are normalised here (cheaply: cached)."""
    model_key, colour_key = _key_kind(normalize_key(key))
    return _relation(model_key, colour_key, normalize_value(extracted), normalize_value(entity), kind == "family")


@dataclass
class _Probe:
    """What one key's extracted values ask of an entity value: one per distinct value, and one per
    colour family for the family guesses (they all answer alike: is the entity's colour of it?)."""

    value: str  # normalised value, or the family for a family group
    family_group: bool
    confidence: float
    members: list[ExtractedAttribute]


def _probes(items: list[ExtractedAttribute]) -> list[_Probe]:
    probes: dict[tuple[str, bool], _Probe] = {}
    for a in items:
        value = normalize_value(a.value)
        if not value:
            continue  # says nothing
        family = base_color(value) if a.kind == "family" else None
        k = (family, True) if family is not None else (value, a.kind == "family")
        probe = probes.get(k)
        if probe is None:
            probes[k] = _Probe(k[0], family is not None, a.confidence, [a])
        else:
            probe.confidence = max(probe.confidence, a.confidence)
            probe.members.append(a)
    return list(probes.values())


_FAMILY_INDEX = {f: i for i, f in enumerate(sorted(FAMILY_WORDS))}
_NOT_COMPACT = re.compile(r"[^0-9a-z+\x00]")  # \x00 separates the values of a batch


class _ValueTables:
    """Per vocabulary value, what the vectorised relation needs: its separator-free form (as an
    id), whether that may be compared for a non-identifier key, and (colour-key values) its family.
    Built once per vocabulary, on the first agreement: about a second per million values."""

    def __init__(self, vocab: AttributeVocabulary) -> None:
        values = vocab.values
        forms = _NOT_COMPACT.sub("", "\x00".join(values)).split("\x00") if values else []
        self.compact_index: dict[str, int] = {}
        index = self.compact_index
        self.compact_id = np.fromiter((index.setdefault(f, len(index)) for f in forms), dtype=np.int64,
                                      count=len(forms))
        self.comparable = np.fromiter((_compact_comparable(v) for v in values), dtype=bool, count=len(values))
        self.family = np.full(len(values), -1, dtype=np.int16)
        colour_keys = np.array([is_color_key(k) for k in vocab.keys], dtype=bool)
        if vocab.n_pairs:
            for v in np.unique(vocab.pair_value[colour_keys[vocab.pair_key]]).tolist():
                family = base_color(values[v])
                if family is not None:
                    self.family[v] = _FAMILY_INDEX[family]


_TABLES: weakref.WeakKeyDictionary[AttributeVocabulary, _ValueTables] = weakref.WeakKeyDictionary()


def _tables(vocab: AttributeVocabulary) -> _ValueTables:
    tables = _TABLES.get(vocab)
    if tables is None or len(tables.compact_id) != len(vocab.values):
        tables = _TABLES[vocab] = _ValueTables(vocab)
    return tables


def prepare_agreement(vocab: AttributeVocabulary) -> None:
    """Build the per-value tables of `agreement_scores` now (a server calls it at load) rather than on first use."""
    _tables(vocab)


def _key_relations(tables: _ValueTables, values: list[str], model_key: bool, colour_key: bool,
                   probes: list[_Probe], vids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_relation` of every probe of a key against many entity values at once, as (relation int8
    [probes, values], factor float32 [probes, values]); the same precedence as `_relation`:
    equal or same identifier > colour family > containment > contradiction."""
    n_probes, n = len(probes), len(vids)
    rel = np.full((n_probes, n), CONTRADICT, dtype=np.int8)
    factor = np.ones((n_probes, n), dtype=np.float32)
    family = tables.family[vids][None, :]
    groups = [i for i, p in enumerate(probes) if p.family_group]
    if groups:
        fams = np.array([_FAMILY_INDEX[probes[i].value] for i in groups])[:, None]
        rel[groups] = np.where(family < 0, NEUTRAL, np.where(family == fams, AGREE, CONTRADICT))
        factor[groups] = np.where(family < 0, 0.0, 1.0)
    rows = [i for i, p in enumerate(probes) if not p.family_group]
    if not rows:
        return rel, factor
    xs = [probes[i].value for i in rows]
    x_pad = np.array([f" {x} " for x in xs])[:, None]
    padded = np.array([f" {values[v]} " for v in vids.tolist()])[None, :]
    same = x_pad == padded
    compared = [model_key or _compact_comparable(x) for x in xs]
    if any(compared):
        cids = np.array([tables.compact_index.get(_NOT_COMPACT.sub("", x), -2) if ok else -3
                         for x, ok in zip(xs, compared)])[:, None]
        same_id = cids == tables.compact_id[vids][None, :]
        same |= same_id if model_key else same_id & tables.comparable[vids][None, :]
    sub_rel = np.full((len(rows), n), CONTRADICT, dtype=np.int8)
    sub_factor = np.ones((len(rows), n), dtype=np.float32)
    bare = np.array([colour_key and x in FAMILY_WORDS for x in xs])[:, None]  # "blue" for a colour key
    if bare.any():
        fx = np.array([_FAMILY_INDEX.get(base_color(x) or "", -9) for x in xs])[:, None]
        ok = bare & (family == fx)
        sub_rel[ok], sub_factor[ok] = AGREE, FAMILY_WORD_FACTOR
        unknown = bare & (family < 0)
        sub_rel[unknown], sub_factor[unknown] = NEUTRAL, 0.0
    if not bare.all():
        contained = ((np.strings.find(padded, x_pad) >= 0) | (np.strings.find(x_pad, padded) >= 0)) & ~bare
        sub_rel[contained], sub_factor[contained] = AGREE, CONTAINED_FACTOR
    sub_rel[same], sub_factor[same] = AGREE, 1.0
    rel[rows], factor[rows] = sub_rel, sub_factor
    return rel, factor


def _grouped(extracted: Sequence[ExtractedAttribute], vocab: AttributeVocabulary
             ) -> dict[int, list[ExtractedAttribute]]:
    groups: dict[int, list[ExtractedAttribute]] = {}
    for a in extracted:
        kid = vocab.key_id(a.key)
        if kid >= 0 and a.confidence > 0:
            groups.setdefault(kid, []).append(a)
    return groups


def agreement(extracted: Sequence[ExtractedAttribute], entity_row: int, vocab: AttributeVocabulary
              ) -> AttributeAgreement:
    """How the extracted values bear on one entity (see the module docstring for the rules)."""
    groups = _grouped(extracted, vocab)
    out = AttributeAgreement()
    if not groups:
        return out
    key_ids = list(groups)
    ev = vocab.entity_value_ids([entity_row], key_ids)[0]
    tables = _tables(vocab)
    for j, kid in enumerate(key_ids):
        if ev[j] < 0:
            continue  # the entity lacks this key
        vids = ev[j : j + 1].astype(np.int64)
        model_key, colour_key = _key_kind(vocab.keys[kid])
        agree_best, contra_best = 0.0, 0.0
        agreeing: list[ExtractedAttribute] = []
        contradicting: list[ExtractedAttribute] = []
        probes = _probes(groups[kid])
        rel, factor = _key_relations(tables, vocab.values, model_key, colour_key, probes, vids)
        for i, probe in enumerate(probes):
            if rel[i, 0] == AGREE:
                agreeing.extend(probe.members)
                agree_best = max(agree_best, probe.confidence * float(factor[i, 0]))
            elif rel[i, 0] == CONTRADICT:
                contradicting.extend(probe.members)
                contra_best = max(contra_best, probe.confidence * float(factor[i, 0]))
        out.agree.extend(agreeing)
        if agreeing:
            out.score += agree_best
        elif contradicting:
            out.contradict.extend(contradicting)
            out.score -= contra_best
    return out


def agreement_scores(
    extracted: Sequence[ExtractedAttribute], entity_rows: Sequence[int] | np.ndarray, vocab: AttributeVocabulary
) -> tuple[np.ndarray, np.ndarray]:
    """`agreement(...).score` and `.contradicted` for many entities at once: (float32 [n], bool [n]).

    One gather fetches every (candidate, key) value; each probe (a distinct extracted value,
    or a colour family of guesses) is compared once per DISTINCT entity value of its key.
    """
    rows = np.asarray(entity_rows, dtype=np.int64).reshape(-1)
    scores = np.zeros(len(rows), dtype=np.float32)
    contradicted = np.zeros(len(rows), dtype=bool)
    groups = _grouped(extracted, vocab)
    if not groups or not len(rows):
        return scores, contradicted
    key_ids = list(groups)
    ev = vocab.entity_value_ids(rows, key_ids)
    tables = _tables(vocab)
    for j, kid in enumerate(key_ids):
        uniq, inverse = np.unique(ev[:, j], return_inverse=True)
        inverse = inverse.reshape(-1)
        present = uniq >= 0  # candidates that lack the key stay at zero
        vids = uniq[present].astype(np.int64)
        agree_u = np.zeros(len(uniq), dtype=np.float32)
        contra_u = np.zeros(len(uniq), dtype=np.float32)
        if len(vids):
            model_key, colour_key = _key_kind(vocab.keys[kid])
            probes = _probes(groups[kid])
            rel, factor = _key_relations(tables, vocab.values, model_key, colour_key, probes, vids)
            weighted = np.array([p.confidence for p in probes], dtype=np.float32)[:, None] * factor
            agree_p = np.where(rel == AGREE, weighted, 0).max(axis=0)
            contra_p = np.where(rel == CONTRADICT, weighted, 0).max(axis=0)
            agree_u[present] = agree_p
            contra_u[present] = contra_p
        a_col, c_col = agree_u[inverse], contra_u[inverse]
        scores += np.where(a_col > 0, a_col, -c_col)
        contradicted |= (a_col == 0) & (c_col > 0)
    return scores, contradicted
