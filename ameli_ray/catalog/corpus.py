"""Synthetic review corpora at scale: N mentions of an existing catalogue's products, as sharded JSONL.

The scale runs (linking 100k-1M reviews) need input that reads like reviews of the KB's products,
not real data. `generate_corpus` writes

    out_uri/reviews-00000-of-00020.jsonl.gz   `shard_size` lines each, the JSONL corpus format
    out_uri/_corpus.json                      counts, arguments, catalogue, each shard's lines and sha256

Each review is about a product drawn uniformly from the catalogue (its id is the gold). Its text
comes from templates that name the product (brand, name words, series, model number) and state
some of its attribute values, preferring the ones that tell near-duplicates apart (colour,
capacity, size, model number), in varied phrasing; its photos are 0-2 of the product's own
images. About `nil_share` of the reviews are about a made-up product (`"nil": true`): a brand
and a model code that no catalogue word matches, with the name words, noun and some attribute
values of a real product (the hard kind of NIL). With `bad_share`, that share of the lines is
malformed in each of the ways the readers set aside (`BAD_KINDS`), so the rejected-records
path has input too.

Speed: whatever depends only on the product is rendered and JSON-escaped once; the random
choices of a block of lines are numpy arrays; a line is a concatenation of escaped pieces (no
json.dumps per line). Shards are built and written one at a time, so memory does not grow with N.

Determinism: line i depends only on the catalogue, the shares and (seed, i): its choices come
from `default_rng([seed, _STREAM, i // _BLOCK])`. The same arguments give the same bytes, and the
first 100k lines of a 1M corpus are the 100k corpus; `shard_size` decides only where the files
split (and a duplicate-id line that would open a shard, with no earlier id to repeat, becomes a
missing-text line).
"""

from __future__ import annotations

import gzip as gzip_format
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from ameli_ray.catalog.reviews import (
    _CLOSERS_NEG,
    _CLOSERS_POS,
    _DURATIONS,
    _GENERIC_MILD,
    _GENERIC_NEG,
    _GENERIC_POS,
    _HEADERS_MID,
    _HEADERS_NEG,
    _HEADERS_POS,
    _OPENERS,
    _VERDICTS,
    _WHEN,
)
from ameli_ray.catalog.tables import COLORS, is_informative_value
from ameli_ray.errors import ConfigError
from ameli_ray.formats import read_entities
from ameli_ray.schema import Entity
from ameli_ray.storage.objects import ObjectStore, join_uri

CORPUS_VERSION = "1"
SUMMARY_NAME = "_corpus.json"  # a leading "_": the shard listing treats it as metadata, not records
BAD_KINDS = ("not_json", "missing_text", "duplicate_id", "bad_id", "bad_utf8", "not_object")
SHARD_NAME = re.compile(r"reviews-(\d{5})-of-(\d{5})\.jsonl(\.gz)?$")
ProgressFn = Callable[[int, int], None]  # (shards written, shards in all)

_STREAM = 0xC0  # keeps these draws apart from generate_catalog's [seed, stream, index] streams
_BLOCK = 4096  # lines drawn together; fixed, so line i does not depend on N or shard_size
_COLUMNS = 40  # uniform draws per line, some spare: a new choice must not shift the others
_GZIP_LEVEL = 3  # a third of level 6's time for 20% more bytes: at level 6 gzip was 40% of the run
_MAX_ATTRIBUTES = 24  # per product; the catalogue's first ones (the demo lists its variant axes first)

# -- wording ----------------------------------------------------------------------------------------
_SENTIMENT_P = np.array([0.76, 0.12, 0.12])  # positive, mixed, negative
_NAME_SENTENCES = (
    ("The {c} is everything I hoped for.", "Really happy with the {c}.", "The {c} does exactly what I needed."),
    ("The {c} is fine, nothing special.", "The {c} does the job.", "The {c} is okay for the price."),
    ("I expected more from the {c}.", "The {c} let me down.", "I regret buying the {c}."),
)
_CHATTER = (_GENERIC_POS, _GENERIC_MILD + ("It does what it says.", "Setup took a while."), _GENERIC_NEG + _GENERIC_MILD)
_CLOSERS = (_CLOSERS_POS, ("Fair enough.", "It's okay.", "Three stars."), _CLOSERS_NEG)
_HEADERS = (_HEADERS_POS, _HEADERS_MID, _HEADERS_NEG)

# Attribute kinds, by key; the first four are what decides between near-duplicates.
_DECIDING = ("colour", "capacity", "size", "model")
_KIND_OF_KEY = (
    ("model", re.compile(r"model|\bmpn\b|part number")),
    ("colour", re.compile(r"colou?r")),
    ("capacity", re.compile(r"capacity|storage|memory|\bram\b")),
    ("dimensions", re.compile(r"dimension")),
    ("size", re.compile(r"size")),
    ("brand", re.compile(r"^(brand|brand name|manufacturer|make)$")),
    ("series", re.compile(r"^(series|product line)$")),
    ("price", re.compile(r"price")),
)
_SKIPPED_KEYS = frozenset({"product name", "name", "title"})
_NAME_KINDS = frozenset({"model", "brand", "series"})  # would point a NIL review at a real product
_ATTRIBUTE_SENTENCES: dict[str, tuple[str, ...]] = {
    "colour": ("I went with the {v} one.", "Got it in {v}.", "The {v} looks even better in person.", "Love the {v} color."),
    "capacity": ("I got the {v} version.", "The {v} is plenty for me.", "Went for the {v} model.", "Glad I picked {v}."),
    "size": ("I chose the {v} size.", "The {v} is just right for me.", "Ordered it in {v}."),
    "dimensions": ("It measures {v}.", "At {v} it fits where I needed it.", "The box says {v}."),
    "model": ("Model {v} for anyone searching.", "The box says model {v}.", "Mine is the {v}, as listed."),
    "brand": ("{v} makes solid stuff.", "It's my first {v} product.", "I have always trusted {v}."),
    "series": ("The {v} line keeps getting better.", "I had read good things about the {v}."),
    "price": ("Paid {v} for it.", "At {v} it was a fair deal."),
    "other": ("The {k} is {v}.", "{K}: {v}, as described.", "It has {v} for the {k}, as listed."),
}
_NUMBER_UNIT = re.compile(r"^(\d+(?:\.\d+)?)\s*([A-Za-z]+)$")
_FAKE_BRAND_HEADS = ("Zor", "Vel", "Quin", "Bram", "Tal", "Mur", "Fen", "Oxa", "Kri", "Lun", "Dax", "Pry", "Sel", "Wov", "Yar", "Hux")
_FAKE_BRAND_TAILS = ("vane", "tix", "mora", "dyn", "quel", "ara", "lux", "bri", "nox", "tera", "vio", "zen")
_CODE_LETTERS = "ABCDEFGHJKLMNPRSTVWXZ"
_BAD_IDS = ("1.5", "true", '["{id}"]', '{{"id": "{id}"}}')  # not a string or an integer
_BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82")  # stray byte, bad continuation, surrogate, cut short
_TEXTLESS = ("", ', "text": ""', ', "text": "   "')


def _esc(text: str) -> str:
    """`text` as the inside of a JSON string: escaped pieces concatenate to an escaped whole."""
    out = json.dumps(text, ensure_ascii=False)[1:-1]
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in the catalogue: keep it as a \u escape
        out = json.dumps(text)[1:-1]
    return out


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _slots(templates: tuple[str, ...], slot: str) -> list[tuple[str, str, bool]]:
    """Each template as the escaped (text before, text after) of its `slot`, and whether it has one."""
    out = []
    for template in templates:
        before, found, after = template.partition(slot)
        out.append((_esc(before), _esc(after), bool(found)))
    return out


def _openers(sentiment: int) -> list[tuple[str, str, bool]]:
    """The demo's openers with every filler spelled out: (before, after, mention capitalised)."""
    verdicts = _VERDICTS[sentiment < 2]
    out = []
    for template in _OPENERS:
        fills: list[dict[str, str]] = [{}]
        for name, options in (("when", _WHEN), ("dur", _DURATIONS), ("verdict", verdicts)):
            if "{" + name + "}" in template:
                fills = [{**f, name: o} for f in fills for o in options]
        for fill in fills:
            text = template.format(m="\0", M="\1", **fill)
            capital = "\1" in text
            before, _, after = text.replace("\1", "\0").partition("\0")
            out.append((_esc(before), _esc(after), capital))
    return out


_OPEN = [_openers(s) for s in range(3)]
_NAME = [_slots(t, "{c}") for t in _NAME_SENTENCES]
_HEAD = [_slots(tuple(h + "." for h in t), "{n}") for t in _HEADERS]
_CHAT = [[_esc(x) for x in t] for t in _CHATTER]
_CLOSE = [[_esc(x) for x in t] for t in _CLOSERS]


# -- public API -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardInfo:
    name: str
    lines: int
    mentions: int  # lines that are valid mentions (NIL ones included)
    nil: int
    bad: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CorpusSummary:
    """What `generate_corpus` wrote; `to_json()` is the content of `_corpus.json` (no timings and
    not the output location, so equal arguments give equal bytes wherever they are written)."""

    out_uri: str
    summary_uri: str
    n_reviews: int  # lines, bad ones included
    n_mentions: int  # valid mentions: n_reviews - n_bad
    n_nil: int
    n_bad: int
    bad_kinds: dict[str, int]
    n_with_photos: int
    shards: list[ShardInfo]
    entities_uri: str
    n_entities: int
    seed: int
    shard_size: int
    nil_share: float
    bad_share: float
    photos: bool
    gzip: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "corpus_version": CORPUS_VERSION,
            "n_reviews": self.n_reviews,
            "n_mentions": self.n_mentions,
            "n_nil": self.n_nil,
            "n_bad": self.n_bad,
            "bad_kinds": dict(self.bad_kinds),
            "n_with_photos": self.n_with_photos,
            "catalogue": {"entities_uri": self.entities_uri, "n_entities": self.n_entities},
            "seed": self.seed,
            "shard_size": self.shard_size,
            "nil_share": self.nil_share,
            "bad_share": self.bad_share,
            "photos": self.photos,
            "gzip": self.gzip,
            "shards": [s.to_json() for s in self.shards],
        }


def generate_corpus(
    entities_uri: str,
    out_uri: str,
    n_reviews: int,
    *,
    shard_size: int = 50_000,
    seed: int = 0,
    nil_share: float = 0.05,
    bad_share: float = 0.0,
    photos: bool = True,
    gzip: bool = True,
    store: ObjectStore | None = None,
    images_uri: str | None = None,
    progress: ProgressFn | None = None,
) -> CorpusSummary:
    """Write `n_reviews` synthetic reviews of the products of `entities_uri` under `out_uri`.

    The catalogue is read with `read_entities` (AMELI .json or .jsonl, local or s3://; images
    under `images_uri`, by default beside it); photos are its image URIs as read (absolute), so the
    corpus works wherever it is written. Ids are `syn-<seed>-<index>`. Shards are named
    `reviews-<k>-of-<n>.jsonl[.gz]`; an `out_uri` that holds shards of another corpus (another
    count, or the other compression) is refused rather than mixed with them.
    """
    if n_reviews < 1:
        raise ConfigError("n_reviews must be at least 1")
    if shard_size < 1:
        raise ConfigError("shard_size must be at least 1")
    if seed < 0:
        raise ConfigError("seed must be >= 0")  # numpy seeds with non-negative integers only
    for name, share in (("nil_share", nil_share), ("bad_share", bad_share)):
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1, got {share}")
    store = store or ObjectStore()
    entities = read_entities(entities_uri, store, images_uri)
    if not entities:
        raise ConfigError(f"{entities_uri}: the catalogue holds no entities")

    n_shards = math.ceil(n_reviews / shard_size)
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    names = [f"reviews-{k:05d}-of-{n_shards:05d}{suffix}" for k in range(n_shards)]
    store.ensure_bucket(out_uri)
    _refuse_other_shards(out_uri, set(names), store)

    maker = _LineMaker(entities, seed, nil_share, bad_share, photos, shard_size)
    lines = maker.lines(n_reviews)
    shards: list[ShardInfo] = []
    totals = {"good": 0, "photos": 0, "nil": 0, **{k: 0 for k in BAD_KINDS}}
    for k, name in enumerate(names):
        count = min(shard_size, n_reviews - k * shard_size)
        tags: dict[str, int] = {}
        body = bytearray()
        for line, tag in islice(lines, count):
            body += line
            body += b"\n"
            tags[tag] = tags.get(tag, 0) + 1
        # mtime=0: no timestamp in the gzip header, so equal arguments give equal bytes
        data = gzip_format.compress(bytes(body), compresslevel=_GZIP_LEVEL, mtime=0) if gzip else bytes(body)
        del body
        store.write_bytes(join_uri(out_uri, name), data)
        bad = sum(tags.get(kind, 0) for kind in BAD_KINDS)
        shards.append(ShardInfo(name, count, count - bad, tags.get("nil", 0), bad, len(data), hashlib.sha256(data).hexdigest()))
        for tag, n in tags.items():
            totals[tag] += n
        if progress is not None:
            progress(k + 1, n_shards)

    n_bad = sum(totals[kind] for kind in BAD_KINDS)
    summary = CorpusSummary(
        out_uri=out_uri,
        summary_uri=join_uri(out_uri, SUMMARY_NAME),
        n_reviews=n_reviews,
        n_mentions=n_reviews - n_bad,
        n_nil=totals["nil"],
        n_bad=n_bad,
        bad_kinds={kind: totals[kind] for kind in BAD_KINDS},
        n_with_photos=totals["photos"],
        shards=shards,
        entities_uri=entities_uri,
        n_entities=len(entities),
        seed=seed,
        shard_size=shard_size,
        nil_share=nil_share,
        bad_share=bad_share,
        photos=photos,
        gzip=gzip,
    )
    store.write_text(summary.summary_uri, json.dumps(summary.to_json(), ensure_ascii=False, indent=1) + "\n")
    return summary


def _refuse_other_shards(out_uri: str, ours: set[str], store: ObjectStore) -> None:
    """Shards of an earlier corpus with another count would be read along with the new ones."""
    for uri in store.list_files(out_uri):
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        if SHARD_NAME.fullmatch(name) and name not in ours:
            raise ConfigError(f"{out_uri} already holds {name}, a shard of another corpus: write to an empty folder")


# -- per-product pieces -----------------------------------------------------------------------------
@dataclass(slots=True)
class _Piece:
    """What a review of one product is made of, escaped for a JSON string."""

    gold: str  # ', "gold_entity_id": "..."'
    noun: str
    mentions: list[tuple[str, str, str]]  # (in a sentence, opening a sentence, surface field)
    core: str  # a few name words
    core_words: list[str]
    sentences: list[list[str]]  # per attribute: its sentence variants, deciding attributes first
    golds: list[str]  # per attribute: '"key": "value"'
    n_deciding: int
    plain: list[int]  # attributes that name no brand, series or model (what a NIL review may borrow)
    images: list[str]  # '"uri"'


def _kind(key: str) -> str:
    low = key.lower()
    for kind, pattern in _KIND_OF_KEY:
        if pattern.search(low):
            return kind
    return "other"


def _variants(kind: str, value: str) -> list[str]:
    """Ways a reviewer writes a value: literally, and "55-inch" for "55 inches", "256 GB" for
    "256GB", a colour in lower case or by a looser name ("blue" for Royal Blue), "$12" for a price.
    Other kinds keep the catalogue's spelling: their sentences quote it ("Wattage: 1500 watts")."""
    if kind == "colour":
        aliases = COLORS[value].aliases if value in COLORS else ()
        return [value.lower(), *aliases[:1]]
    if kind == "price":
        try:
            return [f"${float(value):.2f}"]
        except ValueError:
            return [value]
    out = [value]
    match = _NUMBER_UNIT.match(value) if kind in ("capacity", "size") else None
    if match:
        number, unit = match.groups()
        if len(unit) <= 2 or unit.isupper():  # 256GB, 120 Hz
            out.append(f"{number} {unit}")
        else:  # 55 inches, 10 cups, 1500 watts
            singular = unit[:-2] if unit.endswith("ches") else unit[:-1] if unit.endswith("s") else unit
            out.append(f"{number}-{singular}")
    return list(dict.fromkeys(out))


def _noun(category: str) -> str:
    words = category.split()
    if not words or len(words) > 3 or "_" in category or not category.replace(" ", "").replace("-", "").isalpha():
        return "product"
    last = words[-1]
    if last.lower().endswith("s") and not last.lower().endswith("ss"):
        last = last[:-1]
    words[-1] = last
    # "TV" keeps its capitals; "Coffee Makers" and "T-Shirts" are lower case in a sentence
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)


def _piece(entity: Entity, photos: bool) -> _Piece:
    attributes = entity.attributes
    kinds = {key: _kind(key) for key in attributes}
    brand = next((v for k, v in attributes.items() if kinds[k] == "brand"), "")
    parts = [p.strip() for p in entity.name.split(" - ") if p.strip()] or [entity.name]
    if not brand:  # "Brand - Name - Colour" (AMELI), else the first word
        brand = parts[0] if len(parts) >= 3 else (entity.name.split() or [""])[0]
    rest = parts[1] if len(parts) >= 2 and parts[0].lower() == brand.lower() else parts[0]
    if brand and rest.lower().startswith(brand.lower() + " "):
        rest = rest[len(brand) + 1:]
    noun = _noun(entity.category)
    core_words = rest.split()[:4] or entity.name.split()[:4] or [noun]
    series = next((v for k, v in attributes.items() if kinds[k] == "series"), "")
    model = next((v for k, v in attributes.items() if kinds[k] == "model"), "")

    def the(*words: str) -> str:
        return " ".join(["the", *(w for w in words if w)])

    phrases = [the(brand, *core_words[:2]), the(*core_words[:3]), f"this {noun}"]
    if series:
        phrases.append(the(brand, series))
    if model:
        phrases.append(the(brand, model))
    mentions = []
    for phrase in dict.fromkeys(phrases):
        surface = phrase if phrase.startswith("this ") else phrase[4:]
        mentions.append((_esc(phrase), _esc(_cap(phrase)), _esc(surface)))

    keys = [k for k, v in attributes.items()
            if k.lower() not in _SKIPPED_KEYS and v != entity.name and is_informative_value(v)][:_MAX_ATTRIBUTES]
    keys.sort(key=lambda k: kinds[k] not in _DECIDING)  # stable: catalogue order within each group
    sentences, golds, plain = [], [], []
    for i, key in enumerate(keys):
        kind = kinds[key]
        value = attributes[key]
        variants = _variants(kind, value)
        sentences.append([
            _esc(t.replace("{k}", key.lower()).replace("{K}", key).replace("{v}", v))
            for t in _ATTRIBUTE_SENTENCES[kind] for v in variants
        ])
        golds.append(f'"{_esc(key)}": "{_esc(value)}"')
        if kind not in _NAME_KINDS:
            plain.append(i)
    return _Piece(
        gold=f', "gold_entity_id": "{_esc(entity.id)}"',
        noun=_esc(noun),
        mentions=mentions,
        core=_esc(" ".join(core_words)),
        core_words=[_esc(w) for w in core_words],
        sentences=sentences,
        golds=golds,
        n_deciding=sum(kinds[k] in _DECIDING for k in keys),
        plain=plain,
        images=[f'"{_esc(u)}"' for u in entity.image_uris] if photos else [],
    )


def _catalogue_words(entities: list[Entity]) -> set[str]:
    """Every word of the catalogue's names and values, lower case: a made-up name must avoid them."""
    words: set[str] = set()
    for e in entities:
        words.update(e.name.lower().split())
        for value in e.attributes.values():
            words.update(value.lower().split())
    return words


# -- lines ------------------------------------------------------------------------------------------
class _LineMaker:
    """Line i of the corpus, as (UTF-8 bytes without the newline, tag); the tag is "good",
    "photos" (good, with photos), "nil" or a bad kind."""

    def __init__(self, entities: list[Entity], seed: int, nil_share: float, bad_share: float, photos: bool,
                 shard_size: int):
        self.seed = seed
        self.nil_share = nil_share
        self.bad_share = bad_share
        self.shard_size = shard_size
        self.photos = photos
        self.pieces = [_piece(e, photos) for e in entities]
        self.n_mentions = np.array([len(p.mentions) for p in self.pieces])
        self.n_attributes = np.array([len(p.sentences) for p in self.pieces])
        self.n_deciding = np.array([p.n_deciding for p in self.pieces])
        self.n_plain = np.array([len(p.plain) for p in self.pieces])
        self.n_images = np.array([len(p.images) for p in self.pieces])
        self.n_core = np.array([len(p.core_words) for p in self.pieces])
        self.words = _catalogue_words(entities)
        fakes = [h + t for h in _FAKE_BRAND_HEADS for t in _FAKE_BRAND_TAILS if (h + t).lower() not in self.words]
        self.fake_brands = fakes or ["Nonesuch"]
        self.len_open = np.array([len(o) for o in _OPEN])
        self.len_name = np.array([len(o) for o in _NAME])
        self.len_head = np.array([len(o) for o in _HEAD])
        self.len_chat = np.array([len(o) for o in _CHAT])
        self.len_close = np.array([len(o) for o in _CLOSE])

    def is_bad(self, i: np.ndarray) -> np.ndarray:
        """Bad lines spread evenly: line i is bad when it crosses a multiple of 1/bad_share, so the
        first n lines hold floor(n * bad_share) of them, cycling through BAD_KINDS."""
        return np.floor((i + 1) * self.bad_share) > np.floor(i * self.bad_share)

    def lines(self, n: int) -> Iterator[tuple[bytes, str]]:
        for block in range(math.ceil(n / _BLOCK)):
            start = block * _BLOCK
            yield from islice(self._block(block), min(_BLOCK, n - start))

    def _block(self, block: int) -> Iterator[tuple[bytes, str]]:
        rng = np.random.default_rng([self.seed, _STREAM, block])
        size = _BLOCK
        # Every array is drawn at full size whatever is used, so a line's draws never depend on N.
        ent = rng.integers(len(self.pieces), size=size)
        sentiment = rng.choice(3, size=size, p=_SENTIMENT_P)
        u = rng.random((size, _COLUMNS))
        code = rng.integers(len(_CODE_LETTERS), size=(size, 3))
        digits = rng.integers(100, 10_000, size=size)
        columns = iter(range(_COLUMNS))

        def uniform() -> np.ndarray:
            return u[:, next(columns)]

        def pick(lengths: np.ndarray) -> list[int]:
            """An index below each row's length (0 where the length is 0)."""
            return np.minimum((uniform() * lengths).astype(np.int64), np.maximum(lengths - 1, 0)).tolist()

        def share(p: float) -> list[bool]:
            return (uniform() < p).tolist()

        def count(edges: list[float]) -> np.ndarray:
            return np.searchsorted(edges, uniform(), side="right")

        index = np.arange(block * _BLOCK, (block + 1) * _BLOCK)
        bad = self.is_bad(index).tolist()
        bad_prev = self.is_bad(index - 1).tolist()
        bad_kind = (np.floor(index * self.bad_share).astype(np.int64) % len(BAD_KINDS)).tolist()
        n_attributes, n_images = self.n_attributes[ent], self.n_images[ent]
        nil = share(self.nil_share)
        header, head = share(0.35), pick(self.len_head[sentiment])
        opener, mention = pick(self.len_open[sentiment]), pick(self.n_mentions[ent])
        named, name = share(0.4), pick(self.len_name[sentiment])
        n_attr = np.minimum(count([0.35, 0.8]) + 1, n_attributes).tolist()  # 1-3 stated values
        # the first stated value is a deciding one (colour, capacity, size, model) 85% of the time
        first_deciding = share(0.85)
        deciding = pick(self.n_deciding[ent])
        attr = [pick(n_attributes) for _ in range(3)]
        variant = [(uniform() * 720).astype(np.int64).tolist() for _ in range(3)]  # mod each one's count
        n_chat = count([0.25, 0.75]).tolist()
        chat = [pick(self.len_chat[sentiment]) for _ in range(2)]
        closer, close = share(0.5), pick(self.len_close[sentiment])
        rotate = (uniform() * 720).astype(np.int64).tolist()
        n_img = np.minimum(count([0.35, 0.8]), n_images).tolist()  # 0-2 photos
        first_img = np.array(pick(n_images))
        other = np.array(pick(np.maximum(n_images - 1, 1)))
        second_img = ((first_img + 1 + other) % np.maximum(n_images, 1)).tolist()
        first_img = first_img.tolist()
        fake_brand = pick(np.full(size, len(self.fake_brands)))
        plain = [pick(self.n_plain[ent]) for _ in range(2)]
        core_shift = pick(self.n_core[ent])
        model_sentence = share(0.5)
        bad_variant = pick(np.full(size, 12))
        ent, sentiment, code, digits, index = ent.tolist(), sentiment.tolist(), code.tolist(), digits.tolist(), index.tolist()

        pieces, seed = self.pieces, self.seed
        for r in range(size):
            i, s, p = index[r], sentiment[r], pieces[ent[r]]
            rid = f'"syn-{seed}-{i:09d}"'
            lead: list[str] = []  # header and opener
            middle: list[str] = []  # name words, stated values, chatter: in varied order
            golds: list[str] = []
            before, after, capital = _OPEN[s][opener[r]]
            if nil[r]:
                c = code[r]
                model = f"{_CODE_LETTERS[c[0]]}{_CODE_LETTERS[c[1]]}-{digits[r]}{_CODE_LETTERS[c[2]]}"
                if model.lower() in self.words:
                    model += "X"
                brand = self.fake_brands[fake_brand[r]]
                surface = f"{brand} {model}"
                lead.append(before + (surface if capital else "the " + surface) + after)
                if named[r]:
                    k = core_shift[r]
                    name_before, name_after, _ = _NAME[s][name[r]]
                    middle.append(name_before + brand + " " + " ".join(p.core_words[k:] + p.core_words[:k]) + name_after)
                if p.plain:
                    for j in range(min(n_attr[r], 2)):
                        a = p.plain[plain[j][r]]
                        if j == 0 or a != p.plain[plain[0][r]]:
                            options = p.sentences[a]
                            middle.append(options[variant[j][r] % len(options)])
                            golds.append(p.golds[a])
                if model_sentence[r]:
                    middle.append(f"Model {model} for anyone searching.")
                tail = f', "surface": "{surface}", "nil": true, "gold_attributes": {{{", ".join(golds)}}}}}'
                tag = "nil"
            else:
                in_text, opening, surface = p.mentions[mention[r]]
                if header[r]:
                    head_before, head_after, with_noun = _HEAD[s][head[r]]
                    lead.append(head_before + p.noun + head_after if with_noun else head_before)
                lead.append(before + (opening if capital else in_text) + after)
                if named[r]:
                    name_before, name_after, _ = _NAME[s][name[r]]
                    middle.append(name_before + p.core + name_after)
                chosen: list[int] = []
                for j in range(n_attr[r]):
                    a = deciding[r] if j == 0 and first_deciding[r] and p.n_deciding else attr[j][r]
                    if a not in chosen:
                        chosen.append(a)
                        options = p.sentences[a]
                        middle.append(options[variant[j][r] % len(options)])
                        golds.append(p.golds[a])
                images = ""
                if n_img[r]:
                    images = p.images[first_img[r]] + (", " + p.images[second_img[r]] if n_img[r] > 1 else "")
                photo_field = f', "image_uris": [{images}]' if self.photos else ""
                tail = f', "surface": "{surface}"{photo_field}{p.gold}, "gold_attributes": {{{", ".join(golds)}}}}}'
                tag = "photos" if images else "good"
            if n_chat[r]:
                middle.append(_CHAT[s][chat[0][r]])
                if n_chat[r] > 1 and chat[1][r] != chat[0][r]:
                    middle.append(_CHAT[s][chat[1][r]])
            cut = rotate[r] % len(middle) if middle else 0
            sentences = lead + middle[cut:] + middle[:cut]
            if closer[r]:
                sentences.append(_CLOSE[s][close[r]])
            text = " ".join(sentences)
            if not bad[r]:
                yield f'{{"id": {rid}, "text": "{text}"{tail}'.encode(), tag
                continue
            kind = BAD_KINDS[bad_kind[r]]
            if kind == "duplicate_id" and (i % self.shard_size == 0 or bad_prev[r]):
                kind = "missing_text"  # nothing earlier in this shard to repeat
            yield self._bad(kind, i, rid, text, tail, bad_variant[r]), kind

    def _bad(self, kind: str, i: int, rid: str, text: str, tail: str, variant: int) -> bytes:
        """A line the readers must set aside, built from the line it replaces."""
        good = f'{{"id": {rid}, "text": "{text}"{tail}'
        if kind == "not_json":
            return good[: max(1, len(good) * (variant % 4 + 1) // 5)].encode()  # an object cut short
        if kind == "missing_text":
            return f'{{"id": {rid}{_TEXTLESS[variant % 3]}{tail}'.encode()
        if kind == "duplicate_id":
            return f'{{"id": "syn-{self.seed}-{i - 1:09d}", "text": "{text}"{tail}'.encode()
        if kind == "bad_id":
            weird = _BAD_IDS[variant % 4].format(id=rid.strip('"'))
            return f'{{"id": {weird}, "text": "{text}"{tail}'.encode()
        if kind == "bad_utf8":
            cut = len(text) // 2
            return (f'{{"id": {rid}, "text": "{text[:cut]}'.encode() + _BAD_UTF8[variant % 4]
                    + f'{text[cut:]}"{tail}'.encode())
        return (f'[{rid}, "{text}"]' if variant % 2 else f'"{text}"').encode()  # not_object
