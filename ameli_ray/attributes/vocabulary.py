"""The attribute vocabulary of a KB: every (key, normalised value) it holds, and a fast matcher.

Built once per KB (`AttributeVocabulary.build(entities)`), stored in the KB as JSON
(`to_json` / `from_json`, no pickle). It answers three questions:
- which values does a category have for a key (`category_values`), what are an entity's attributes
  (`entity_attributes`, `entity_value_ids` for many rows at once);
- where does a text state a vocabulary value (`match`): ONE Aho-Corasick automaton over every
  surface variant of every value, padded with spaces so that a hit is always a run of whole
  normalised tokens ("128gb" is never found in "1128gb", "red" never in "bored"), plus a
  separator-blind pass for identifiers ("NV-AX2-256BL" finds "NV-AX2-256-BL") and a colour-family
  pass ("the blue one" -> every blue value of a colour key, at lower confidence). A value that
  several keys share is reported once per key; a key whose name the sentence mentions nearby
  ("32GB of RAM") keeps full confidence and the others lose some.

What the vocabulary leaves out (decided here, documented in `SKIPPED_KEYS` / `_matchable`):
- keys that echo the name or are free text (product name, title, description, url);
- price keys: a price is an offer, not a property of the product. Walmart-Amazon's two sides of
  the same product rarely state the same price (a mention's price is its gold entity's in 74 of
  853 mentions), so a stated price would mostly "contradict" the right entity;
- as patterns to look for (they stay the entity's values for agreement): values over 40
  characters (free text), values made only of function words ("the", "n/a", ...), bare
  numbers with no unit ("1.8", "2020") except ≥4-digit identifiers under a model-number key (a
  bare number in a review is a quantity or a year far more often than an attribute), and
  model-number-key values without a digit unless written as one code ("SM-ARMBAND"): EM data
  holds words such as "Pro" or "Matte White" there.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick
import numpy as np

from ameli_ray.attributes.normalize import (
    COLOR_FAMILIES,
    COLOR_WORDS,
    NormalizedText,
    base_color,
    compact,
    is_color_key,
    is_model_key,
    is_model_like,
    normalize_key,
    normalize_text,
    normalize_value,
    value_variants,
)
from ameli_ray.schema import Entity

__all__ = ["AttributeMatch", "AttributeVocabulary", "MATCH_CONFIDENCE", "PRICE_KEY", "SKIPPED_KEYS", "skipped_key"]

JSON_VERSION = 1
MAX_VALUE_CHARS = 40

# Confidence of a hit by how it was found.
MATCH_CONFIDENCE: dict[str, float] = {
    "exact": 1.0,  # the full normalised value
    "alias": 0.9,  # an equivalent spelling the vocabulary adds ("size 7.5" for "US 7.5")
    "compact": 0.9,  # an identifier written with other separators ("nvax2256bl")
    "family": 0.6,  # a colour word naming the value's family ("blue" for "Midnight Blue")
}
_KINDS = ("exact", "alias", "compact")  # variant kinds stored in the automaton's payloads

# a key naming a price (an offer, not a property: left out here, read by the price channel, `retrieval.price`)
PRICE_KEY = re.compile(r"price|msrp", re.IGNORECASE)
SKIPPED_KEYS = re.compile(
    r"^(?:product name|name|title|product title|description|overview|features?|url|link|images?|image url)$"
    r"|" + PRICE_KEY.pattern
)


def skipped_key(raw_key: str) -> bool:
    """A key the vocabulary leaves out (`SKIPPED_KEYS`, or empty once normalised)."""
    key = normalize_key(raw_key)
    return not key or SKIPPED_KEYS.search(key) is not None


_STOPWORDS = frozenset(
    "a an the and or of for with without in on to by at it is be this that one all any not new yes no none "
    "other n/a na unknown various varies misc generic unbranded standard regular default see".split()
)
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?(?: \d+(?:\.\d+)?)*")
_CHUNK = re.compile(r"[^\s,;:()\[\]{}<>\"!?|]+")
_CHUNK_EDGES = ".-_/'*#~"
_FLAG_MODEL, _FLAG_MATCHABLE = 1, 2
UNNAMED_KEY_FACTOR = 0.8  # a value several keys share, under a key its context does not name
_CONTEXT = 3  # tokens either side of a match in which a key's name may be mentioned, within the sentence
_SENTENCE_END = re.compile(r"[.!?;]\s|[.!?;]$|\n")
_GENERIC_KEY_WORDS = frozenset(
    "type number of the and or for with in on built included product maximum minimum max min total "
    "size capacity".split()
)


@dataclass(frozen=True)
class AttributeMatch:
    """A vocabulary value found in a text; start/end index the ORIGINAL text."""

    key: str  # canonical key (normalize_key)
    value: str  # normalised value
    surface: str  # text[start:end]
    start: int
    end: int
    confidence: float
    kind: str  # "exact" | "alias" | "compact" | "family"


def _matchable(key: str, norm: str, raw: str) -> bool:
    """Whether to look for this value in reviews at all (it stays the entity's value either way)."""
    if len(norm) < 2 or len(norm) > MAX_VALUE_CHARS:
        return False
    if all(t in _STOPWORDS for t in norm.split()):
        return False
    model_key = is_model_key(key)
    if _BARE_NUMBER.fullmatch(norm):
        # quantities and years, except identifiers such as "121066" or "910-001152"
        return model_key and "." not in norm and sum(c.isdigit() for c in norm) >= 4
    if model_key and not any(c.isdigit() for c in norm):
        # Entity-matching model-number fields hold words ("Pro", "Matte White", "High Power"):
        # without a digit, only a code written as one word with separators ("SM-ARMBAND") counts.
        raw = raw.strip()
        return not any(c.isspace() for c in raw) and any(c in "-_/." for c in raw)
    return True


class AttributeVocabulary:
    """Keys, values and entity rows of a KB's attributes; see the module docstring."""

    def __init__(
        self,
        keys: list[str],
        key_display: list[str],
        values: list[str],
        compacts: dict[int, str],
        pair_key: np.ndarray,
        pair_value: np.ndarray,
        pair_flags: np.ndarray,
        categories: list[str],
        category_pairs: list[np.ndarray],
        row_ptr: np.ndarray,
        row_pairs: np.ndarray,
    ) -> None:
        self.keys = keys
        self.key_display = key_display
        self.values = values
        self.compacts = compacts  # value id -> identifier without separators (model-like values)
        self.pair_key = pair_key.astype(np.int32, copy=False)
        self.pair_value = pair_value.astype(np.int32, copy=False)
        self.pair_flags = pair_flags.astype(np.uint8, copy=False)
        self.categories = categories
        self.category_pairs = category_pairs
        self.row_ptr = row_ptr.astype(np.int64, copy=False)
        self.row_pairs = row_pairs.astype(np.int32, copy=False)
        self._key_index = {k: i for i, k in enumerate(keys)}
        self._value_index: dict[str, int] | None = None
        self._category_index = {c: i for i, c in enumerate(categories)}
        self._category_sets: dict[int, frozenset[int]] = {}
        self._key_word_cache: dict[int, frozenset[str]] = {}
        self._automaton: Any = None
        self._var_ptr: np.ndarray | None = None
        self._var_pairs: np.ndarray | None = None
        self._var_kinds: np.ndarray | None = None
        self._var_family: np.ndarray | None = None
        self._var_len: np.ndarray | None = None  # characters of each variant (the automaton reports ends only)
        self._families: list[str] = sorted(set(COLOR_FAMILIES.values()))
        self._family_pairs: list[np.ndarray] = []
        self._color_keys = np.array([is_color_key(k) for k in keys], dtype=bool)
        self._lock = threading.Lock()  # one build of the automaton when threads share the vocabulary

    _LAZY = ("_automaton", "_var_ptr", "_var_pairs", "_var_kinds", "_var_family", "_var_len", "_family_pairs",
             "_value_index", "_category_sets", "_lock")

    def __getstate__(self) -> dict[str, Any]:
        # Ray ships vocabularies by pickle: send the data, not the derived matcher (rebuilt on first use)
        return {k: v for k, v in self.__dict__.items() if k not in self._LAZY}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._automaton = self._var_ptr = self._var_pairs = self._var_kinds = None
        self._var_family = self._var_len = self._value_index = None
        self._family_pairs = []
        self._category_sets = {}
        self._lock = threading.Lock()

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, entities: Iterable[Entity]) -> AttributeVocabulary:
        """One pass over the entities; row i of the vocabulary is the i-th entity given."""
        keys: list[str] = []
        key_display: list[str] = []
        key_index: dict[str, int] = {}
        key_of: dict[str, int] = {}  # raw key -> key id, -1 when skipped (raw keys repeat: decide once)
        values: list[str] = []
        value_index: dict[str, int] = {}
        norm_cache: dict[str, str] = {}
        compacts: dict[int, str] = {}
        pair_index: dict[tuple[int, int], int] = {}
        pair_key: list[int] = []
        pair_value: list[int] = []
        pair_flags: list[int] = []
        categories: list[str] = []
        category_index: dict[str, int] = {}
        category_sets: list[set[int]] = []
        row_ptr = [0]
        row_pairs: list[int] = []

        for entity in entities:
            cat = category_index.get(entity.category)
            if cat is None:
                cat = category_index[entity.category] = len(categories)
                categories.append(entity.category)
                category_sets.append(set())
            in_category = category_sets[cat]
            seen: set[int] = set()
            for raw_key, raw_value in entity.attributes.items():
                kid = key_of.get(raw_key)
                if kid is None:
                    nkey = normalize_key(raw_key)
                    if skipped_key(raw_key):
                        kid = key_of[raw_key] = -1
                    else:
                        kid = key_index.get(nkey)
                        if kid is None:
                            kid = key_index[nkey] = len(keys)
                            keys.append(nkey)
                            key_display.append(raw_key.strip())
                        key_of[raw_key] = kid
                if kid < 0 or kid in seen:  # skipped; or "Color" after "color" in one entity: the first wins
                    continue
                norm = norm_cache.get(raw_value)
                if norm is None:
                    norm = norm_cache[raw_value] = normalize_value(raw_value)
                if not norm:
                    continue
                seen.add(kid)
                vid = value_index.get(norm)
                if vid is None:
                    vid = value_index[norm] = len(values)
                    values.append(norm)
                pid = pair_index.get((kid, vid))
                if pid is None:  # the first spelling of a (key, value) decides its flags
                    pid = pair_index[(kid, vid)] = len(pair_key)
                    pair_key.append(kid)
                    pair_value.append(vid)
                    flags = _FLAG_MATCHABLE if _matchable(keys[kid], norm, raw_value) else 0
                    if is_model_like(keys[kid], raw_value):
                        flags |= _FLAG_MODEL
                        if vid not in compacts:
                            compacts[vid] = compact(raw_value)
                    pair_flags.append(flags)
                in_category.add(pid)
                row_pairs.append(pid)
            row_ptr.append(len(row_pairs))

        return cls(
            keys=keys,
            key_display=key_display,
            values=values,
            compacts=compacts,
            pair_key=np.asarray(pair_key, dtype=np.int32),
            pair_value=np.asarray(pair_value, dtype=np.int32),
            pair_flags=np.asarray(pair_flags, dtype=np.uint8),
            categories=categories,
            category_pairs=[np.asarray(sorted(s), dtype=np.int32) for s in category_sets],
            row_ptr=np.asarray(row_ptr, dtype=np.int64),
            row_pairs=np.asarray(row_pairs, dtype=np.int32),
        )

    # -- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "keys": self.keys,
            "key_display": self.key_display,
            "values": self.values,
            "compacts": {str(k): v for k, v in self.compacts.items()},
            "pairs": {
                "key": self.pair_key.tolist(),
                "value": self.pair_value.tolist(),
                "flags": self.pair_flags.tolist(),
            },
            "categories": self.categories,
            "category_pairs": [p.tolist() for p in self.category_pairs],
            "rows": {"ptr": self.row_ptr.tolist(), "pairs": self.row_pairs.tolist()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AttributeVocabulary:
        if not isinstance(data, dict) or data.get("version") != JSON_VERSION:
            raise ValueError(f"not an attribute vocabulary of version {JSON_VERSION}")
        try:
            vocab = cls(
                keys=list(data["keys"]),
                key_display=list(data["key_display"]),
                values=list(data["values"]),
                compacts={int(k): str(v) for k, v in data["compacts"].items()},
                pair_key=np.asarray(data["pairs"]["key"], dtype=np.int32),
                pair_value=np.asarray(data["pairs"]["value"], dtype=np.int32),
                pair_flags=np.asarray(data["pairs"]["flags"], dtype=np.uint8),
                categories=list(data["categories"]),
                category_pairs=[np.asarray(p, dtype=np.int32) for p in data["category_pairs"]],
                row_ptr=np.asarray(data["rows"]["ptr"], dtype=np.int64),
                row_pairs=np.asarray(data["rows"]["pairs"], dtype=np.int32),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed attribute vocabulary: {exc!r}") from None
        n_pairs = len(vocab.pair_key)
        if not (
            len(vocab.pair_value) == len(vocab.pair_flags) == n_pairs
            and len(vocab.key_display) == len(vocab.keys)
            and len(vocab.category_pairs) == len(vocab.categories)
            and len(vocab.row_ptr) >= 1
            and vocab.row_ptr[-1] == len(vocab.row_pairs)
            and (n_pairs == 0 or (vocab.pair_key.max() < len(vocab.keys)
                                  and vocab.pair_value.max() < len(vocab.values)))
            and (len(vocab.row_pairs) == 0 or vocab.row_pairs.max() < n_pairs)
        ):
            raise ValueError("malformed attribute vocabulary: inconsistent sizes")
        return vocab

    # -- lookups -------------------------------------------------------------------------------
    @property
    def n_entities(self) -> int:
        return len(self.row_ptr) - 1

    @property
    def n_pairs(self) -> int:
        return len(self.pair_key)

    def key_id(self, key: str) -> int:
        """-1 for keys the vocabulary does not have (compared case-insensitively)."""
        return self._key_index.get(normalize_key(key), -1)

    def value_id(self, value: str) -> int:
        """-1 for values the vocabulary does not have (`value` is normalised first)."""
        if self._value_index is None:
            self._value_index = {v: i for i, v in enumerate(self.values)}
        return self._value_index.get(normalize_value(value), -1)

    def display_key(self, key: str) -> str:
        kid = self.key_id(key)
        return self.key_display[kid] if kid >= 0 else key

    def category_values(self, category: str | None, key: str) -> set[str]:
        """Normalised values of `key` in `category` (every category when None)."""
        kid = self.key_id(key)
        if kid < 0:
            return set()
        if category is None:
            pairs = np.nonzero(self.pair_key == kid)[0]
        else:
            cat = self._category_index.get(category)
            if cat is None:
                return set()
            pairs = self.category_pairs[cat]
            pairs = pairs[self.pair_key[pairs] == kid]
        return {self.values[int(v)] for v in self.pair_value[pairs]}

    def entity_attributes(self, row: int) -> dict[str, str]:
        """Canonical key -> normalised value of entity row `row`."""
        if not 0 <= row < self.n_entities:
            raise IndexError(f"entity row {row} out of range (0..{self.n_entities - 1})")
        pairs = self.row_pairs[self.row_ptr[row] : self.row_ptr[row + 1]]
        return {self.keys[int(self.pair_key[p])]: self.values[int(self.pair_value[p])] for p in pairs}

    def entity_value_ids(self, rows: Sequence[int] | np.ndarray, key_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Value id of each (row, key), int32 [len(rows), len(key_ids)]; -1 where the entity lacks the key."""
        rows_arr = np.asarray(rows, dtype=np.int64).reshape(-1)
        keys_arr = np.asarray(key_ids, dtype=np.int64).reshape(-1)
        out = np.full((len(rows_arr), len(keys_arr)), -1, dtype=np.int32)
        if not len(rows_arr) or not len(keys_arr) or not len(self.row_pairs):
            return out
        if rows_arr.min() < 0 or rows_arr.max() >= self.n_entities:
            raise IndexError(f"entity rows out of range (0..{self.n_entities - 1})")
        # gather the candidates' CSR slices: a few hundred contiguous reads, cache-friendly
        starts = self.row_ptr[rows_arr]
        lengths = self.row_ptr[rows_arr + 1] - starts
        total = int(lengths.sum())
        if not total:
            return out
        owner = np.repeat(np.arange(len(rows_arr)), lengths)
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        pairs = self.row_pairs[np.repeat(starts, lengths) + within]
        column = np.full(len(self.keys), -1, dtype=np.int64)
        valid = (keys_arr >= 0) & (keys_arr < len(self.keys))
        column[keys_arr[valid]] = np.nonzero(valid)[0]
        col = column[self.pair_key[pairs]]
        hit = col >= 0
        out[owner[hit], col[hit]] = self.pair_value[pairs[hit]]
        return out

    def is_color_key_id(self, kid: int) -> bool:
        return bool(0 <= kid < len(self.keys) and self._color_keys[kid])

    def pair_is_model_like(self, pid: int) -> bool:
        return bool(self.pair_flags[pid] & _FLAG_MODEL)

    # -- matching ------------------------------------------------------------------------------
    def _ensure_automaton(self) -> None:
        """Build the automaton on first use: every variant of every matchable pair, and the colour words."""
        if self._automaton is not None:
            return
        with self._lock:
            if self._automaton is None:
                self._build_automaton()

    def _build_automaton(self) -> None:
        variant_ids: dict[str, int] = {}
        entries: list[list[tuple[int, int]]] = []  # per variant: (pair id, kind index)
        matchable = np.nonzero(self.pair_flags & _FLAG_MATCHABLE)[0]
        keys, values, compacts = self.keys, self.values, self.compacts
        for pid in matchable.tolist():
            kid, vid = int(self.pair_key[pid]), int(self.pair_value[pid])
            model = bool(self.pair_flags[pid] & _FLAG_MODEL)
            for variant, kind in value_variants(keys[kid], values[vid], compacts.get(vid) if model else None):
                idx = variant_ids.get(variant)
                if idx is None:
                    idx = variant_ids[variant] = len(entries)
                    entries.append([])
                entries[idx].append((pid, _KINDS.index(kind)))
        family_of: dict[int, int] = {}
        for word, family in COLOR_WORDS.items():
            idx = variant_ids.get(word)
            if idx is None:
                idx = variant_ids[word] = len(entries)
                entries.append([])
            family_of[idx] = self._families.index(family)

        counts = np.fromiter((len(e) for e in entries), dtype=np.int64, count=len(entries))
        self._var_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        flat = [x for e in entries for x in e]
        self._var_pairs = np.fromiter((p for p, _ in flat), dtype=np.int32, count=len(flat))
        self._var_kinds = np.fromiter((k for _, k in flat), dtype=np.int8, count=len(flat))
        self._var_family = np.full(len(entries), -1, dtype=np.int16)
        self._var_len = np.zeros(len(entries), dtype=np.int32)
        for variant, idx in variant_ids.items():
            self._var_len[idx] = len(variant)
        for idx, fam in family_of.items():
            self._var_family[idx] = fam

        # colour-key pairs by family, for "the blue one"
        by_family: list[list[int]] = [[] for _ in self._families]
        color_pairs = np.nonzero(self._color_keys[self.pair_key] & (self.pair_flags & _FLAG_MATCHABLE > 0))[0] \
            if len(self.pair_key) else np.zeros(0, dtype=np.int64)
        for pid in color_pairs.tolist():
            family = base_color(self.values[int(self.pair_value[pid])])
            if family is not None:
                by_family[self._families.index(family)].append(pid)
        self._family_pairs = [np.asarray(p, dtype=np.int32) for p in by_family]

        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for variant, idx in variant_ids.items():
            automaton.add_word(f" {variant} ", idx)  # padded: hits are runs of whole tokens
        automaton.make_automaton()
        self._automaton = automaton

    def _allowed_pairs(self, categories: Collection[str] | None) -> frozenset[int] | None:
        if categories is None:
            return None
        allowed: set[int] = set()
        for category in categories:
            cat = self._category_index.get(category)
            if cat is None:
                continue
            if cat not in self._category_sets:
                self._category_sets[cat] = frozenset(self.category_pairs[cat].tolist())
            allowed |= self._category_sets[cat]
        return frozenset(allowed)

    def match(self, text: str, categories: Collection[str] | None = None) -> list[AttributeMatch]:
        """Every vocabulary value stated in `text` (one match per key sharing a value), sorted by start.

        `categories` restricts the values to those of entities in these categories. A value found
        inside a longer value of the same key ("Envoy 2" in "Envoy 2 Pro") is dropped.
        """
        if not text:
            return []
        self._ensure_automaton()
        assert self._var_ptr is not None and self._var_pairs is not None and self._var_kinds is not None
        assert self._var_family is not None and self._var_len is not None
        allowed = self._allowed_pairs(categories)
        nt = normalize_text(text)
        if not nt.tokens:
            return []
        # token index by start / end offset in the normalised text
        start_tok: dict[int, int] = {}
        end_tok: dict[int, int] = {}
        pos = 0
        for i, tok in enumerate(nt.tokens):
            start_tok[pos] = i
            end_tok[pos + len(tok)] = i
            pos += len(tok) + 1

        # (pair, first token, last token) -> (confidence, kind); spans are in tokens until the end
        best: dict[tuple[int, int, int], tuple[float, str]] = {}
        colour_hits: list[tuple[int, int, int]] = []  # (first token, last token, family)
        var_ptr, var_pairs, var_kinds, var_len = self._var_ptr, self._var_pairs, self._var_kinds, self._var_len
        for end, idx in self._automaton.iter(f" {nt.text} "):
            # the pattern " v " ends at `end` (its trailing space) in the padded text
            length = int(var_ptr[idx + 1] - var_ptr[idx])
            fam = int(self._var_family[idx])
            if length == 0 and fam < 0:
                continue
            t_end = end_tok[end - 1]
            t_start = start_tok[end - int(var_len[idx]) - 1]
            if fam >= 0:
                colour_hits.append((t_start, t_end, fam))
            for j in range(int(var_ptr[idx]), int(var_ptr[idx + 1])):
                pid = int(var_pairs[j])
                if allowed is not None and pid not in allowed:
                    continue
                kind = _KINDS[int(var_kinds[j])]
                conf = MATCH_CONFIDENCE[kind]
                k = (pid, t_start, t_end)
                if k not in best or best[k][0] < conf:
                    best[k] = (conf, kind)

        matches = self._resolve(text, nt, best)
        matches.extend(self._compact_pass(text, allowed))
        matches.extend(self._family_pass(text, nt, best, colour_hits, allowed))
        return _dedupe_sorted(matches)

    def _resolve(self, text: str, nt: NormalizedText, best: dict[tuple[int, int, int], tuple[float, str]]
                 ) -> list[AttributeMatch]:
        """Token spans -> matches, dropping a value inside a longer value of the same key. Where keys
        share a value, the keys the surrounding words do not name lose confidence ("32GB of RAM" is
        more likely memory than storage); they are kept, as the name may be loose ("the OLED panel"
        of a TV whose key is "Display Type")."""
        by_key: dict[int, list[tuple[int, int]]] = {}
        by_span: dict[tuple[int, int, int], list[int]] = {}
        for pid, a, b in best:
            by_key.setdefault(int(self.pair_key[pid]), []).append((a, b))
            by_span.setdefault((int(self.pair_value[pid]), a, b), []).append(int(self.pair_key[pid]))
        unnamed: set[tuple[int, int, int, int]] = set()  # (key, value, first, last) the context does not name
        for (vid, a, b), kids in by_span.items():
            if len(set(kids)) > 1:
                window = _context(text, nt, a, b)
                named = {k for k in kids if self._key_words(k) & window}
                if named:
                    unnamed.update((k, vid, a, b) for k in kids if k not in named)
        out: list[AttributeMatch] = []
        for (pid, a, b), (conf, kind) in best.items():
            kid = int(self.pair_key[pid])
            if any(c <= a and b <= d and (c, d) != (a, b) for c, d in by_key.get(kid, ())):
                continue
            if (kid, int(self.pair_value[pid]), a, b) in unnamed:
                conf *= UNNAMED_KEY_FACTOR
            start, end = nt.starts[a], nt.ends[b]
            out.append(
                AttributeMatch(self.keys[kid], self.values[int(self.pair_value[pid])], text[start:end], start, end,
                               conf, kind)
            )
        return out

    def _key_words(self, kid: int) -> frozenset[str]:
        """The distinctive words of a key's name ("system memory (ram)" -> system, memory, ram)."""
        words = self._key_word_cache.get(kid)
        if words is None:
            words = self._key_word_cache[kid] = frozenset(normalize_value(self.keys[kid]).split()) - _GENERIC_KEY_WORDS
        return words

    def _compact_pass(self, text: str, allowed: frozenset[int] | None) -> list[AttributeMatch]:
        """Identifiers written with other separators: "NV-AX2-256BL" for "NV-AX2-256-BL"."""
        assert self._var_ptr is not None and self._var_pairs is not None
        out: list[AttributeMatch] = []
        for m in _CHUNK.finditer(text):
            chunk = m.group()
            lead = len(chunk) - len(chunk.lstrip(_CHUNK_EDGES))
            chunk = chunk.strip(_CHUNK_EDGES)
            if not chunk or chunk.isalnum():
                continue  # one plain token: the main pass has seen it
            key = compact(chunk)
            if len(key) < 3:
                continue
            idx = self._automaton.get(f" {key} ", -1)
            if idx < 0:
                continue
            start = m.start() + lead
            end = start + len(chunk)
            for j in range(int(self._var_ptr[idx]), int(self._var_ptr[idx + 1])):
                pid = int(self._var_pairs[j])
                if not self.pair_flags[pid] & _FLAG_MODEL or (allowed is not None and pid not in allowed):
                    continue
                out.append(
                    AttributeMatch(self.keys[int(self.pair_key[pid])], self.values[int(self.pair_value[pid])],
                                   text[start:end], start, end, MATCH_CONFIDENCE["compact"], "compact")
                )
        return out

    def _family_pass(self, text: str, nt: NormalizedText, best: dict[tuple[int, int, int], tuple[float, str]],
                     colour_hits: list[tuple[int, int, int]], allowed: frozenset[int] | None) -> list[AttributeMatch]:
        """A colour word that states no colour value itself names a family: every value of it, at lower confidence."""
        if not colour_hits:
            return []
        exact_colour_spans = [(a, b) for (pid, a, b) in best if self._color_keys[self.pair_key[pid]]]
        out: list[AttributeMatch] = []
        for a, b, fam in colour_hits:
            if any(c <= a and b <= d and (c, d) != (a, b) for c, d, _ in colour_hits):
                continue  # "blue" inside "navy blue": the longer colour word speaks
            if any(c <= a and b <= d for c, d in exact_colour_spans):
                continue  # "midnight blue" is a value: the text names it, not just its family
            start, end = nt.starts[a], nt.ends[b]
            for pid in self._family_pairs[fam].tolist():
                if allowed is not None and pid not in allowed:
                    continue
                out.append(
                    AttributeMatch(self.keys[int(self.pair_key[pid])], self.values[int(self.pair_value[pid])],
                                   text[start:end], start, end, MATCH_CONFIDENCE["family"], "family")
                )
        return out


def _context(text: str, nt: NormalizedText, first: int, last: int) -> set[str]:
    """Tokens within _CONTEXT of a span, not crossing a sentence end."""
    words: set[str] = set()
    i = first
    while i > 0 and first - i < _CONTEXT and not _SENTENCE_END.search(text, nt.ends[i - 1], nt.starts[i]):
        i -= 1
        words.add(nt.tokens[i])
    i = last
    n = len(nt.tokens)
    while i + 1 < n and i - last < _CONTEXT and not _SENTENCE_END.search(text, nt.ends[i], nt.starts[i + 1]):
        i += 1
        words.add(nt.tokens[i])
    return words


def _dedupe_sorted(matches: list[AttributeMatch]) -> list[AttributeMatch]:
    best: dict[tuple[str, str, int, int], AttributeMatch] = {}
    for m in matches:
        k = (m.key, m.value, m.start, m.end)
        if k not in best or best[k].confidence < m.confidence:
            best[k] = m
    return sorted(best.values(), key=lambda m: (m.start, -m.confidence, m.key, m.value))
