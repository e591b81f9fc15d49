"""KB assets: a versioned folder under a local path or s3:// URI.

    <root>/LATEST                      the newest version's name (written last)
    <root>/<version>/manifest.json     version, models, dimensions, sha256 of every file
    <root>/<version>/entities.parquet
    <root>/<version>/text_embeddings.npy, image_embeddings.npy, image_owner.npy, image_center.npy
    <root>/<version>/text.faiss, image.faiss
    <root>/<version>/lexical/*.json|*.npy   BM25 (bm25s)
    <root>/<version>/chargram/*.json|*.npy  char n-gram TF-IDF (n-grams, idf, inverted index)
    <root>/<version>/attributes.json         the attribute vocabulary (normalised values per key)

Nothing is pickled: parquet, .npy loaded with allow_pickle=False, FAISS's own serialisation, JSON.
Written and verified as a versioned asset (ameli_ray.storage.versioned): every file is checked
against the manifest's sha256 when read.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, overload

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ameli_ray.attributes.vocabulary import AttributeVocabulary
from ameli_ray.config import IndexSettings
from ameli_ray.errors import InputFormatError
from ameli_ray.retrieval import index as vindex
from ameli_ray.retrieval.chargram import FILES as CHARGRAM_FILES
from ameli_ray.retrieval.chargram import CharGramIndex, entity_doc_text
from ameli_ray.retrieval.codes import product_code_texts
from ameli_ray.retrieval.lexical import LexicalIndex
from ameli_ray.retrieval.numbers import NameNumbers
from ameli_ray.retrieval.price import listed_prices
from ameli_ray.schema import Entity, entities_from_table, entities_to_table
from ameli_ray.storage import ObjectStore, parquet_bytes
from ameli_ray.storage.versioned import VersionedManifest, fetch_verified, read_verified, read_versioned_manifest, write_version

KB_FORMAT_VERSION = 1


class KBManifest(VersionedManifest):
    remedy: ClassVar[str] = "rebuild it"

    format_version: int = KB_FORMAT_VERSION
    text_model: str
    text_dim: int
    text_fingerprint: str = ""  # of the text encoder's weights ("" in KBs from before it was recorded)
    image_model: str
    image_dim: int
    image_fingerprint: str
    n_entities: int
    n_images: int
    text_index: str
    image_index: str
    # kind, vectors, structure (nlist, pq_bytes, m) and the query knobs set at build (nprobe, ef_search)
    text_index_params: dict[str, int | str] = {}
    image_index_params: dict[str, int | str] = {}
    lexical: bool
    chargram: bool = False  # KBs built before the channel existed have none: retrieval goes without it
    build: dict[str, float | int | str] = {}


class EntityTable(Sequence[Entity]):
    """A loaded KB's entities as the columns of their parquet table, an `Entity` made on access.

    Retrieval needs an entity's id for each candidate and the whole record only for the few that
    disambiguation reads; a million products held as Python objects would cost a replica
    gigabytes, their columns a fraction of that (see bench/kb_scale.py)."""

    def __init__(self, table: pa.Table):
        self._table = table.combine_chunks()
        self.ids: list[str] = self._table.column("id").to_pylist()

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, row: int) -> Entity: ...

    @overload
    def __getitem__(self, row: slice) -> list[Entity]: ...

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"entity row {row} of {len(self)}")
        return entities_from_table(self._table.slice(row, 1))[0]

    def __iter__(self) -> Iterator[Entity]:
        for batch in self._table.to_batches(max_chunksize=4096):
            yield from entities_from_table(pa.Table.from_batches([batch]))

    @property
    def table(self) -> pa.Table:
        return self._table


@dataclass
class KnowledgeBase:
    """Everything retrieval needs, in memory. Rows of the arrays follow `entities`."""

    entities: Sequence[Entity]  # a list when built, an EntityTable when loaded
    text_emb: np.ndarray  # [n_entities, text_dim]
    image_emb: np.ndarray  # [n_images, image_dim], centred then L2-normalised
    image_owner: np.ndarray  # [n_images] entity row of each image
    image_center: np.ndarray  # [image_dim] mean raw image embedding, subtracted from queries too
    text_index: faiss.Index
    image_index: faiss.Index
    lexical: LexicalIndex | None
    vocabulary: AttributeVocabulary
    manifest: KBManifest
    chargram: CharGramIndex | None = None
    # image rows sorted by owner, and where each entity's run of them starts: two arrays, not a
    # million small ones
    _image_order: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    _image_bounds: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._image_order = np.argsort(self.image_owner, kind="stable")
        self._image_bounds = np.searchsorted(self.image_owner[self._image_order], np.arange(len(self.entities) + 1))

    def image_rows(self, entity_row: int) -> np.ndarray:
        return self._image_order[self._image_bounds[entity_row] : self._image_bounds[entity_row + 1]]

    @property
    def chargram_fingerprint(self) -> str | None:
        """The sha256 of the char n-gram list (from the manifest): which idf vectors fit its
        n-grams. None for a KB without the channel, or one not written yet."""
        entry = self.manifest.files.get(CHARGRAM_FILES[0])
        return entry.sha256 if entry is not None else None

    @functools.cached_property
    def ids(self) -> list[str]:
        """The id of each entity row."""
        return self.entities.ids if isinstance(self.entities, EntityTable) else [e.id for e in self.entities]

    @functools.cached_property
    def prices(self) -> np.ndarray:
        """[n_entities] each product's listed price (NaN: none), for the price channel. Read from
        the entities' attributes when first needed rather than stored: older KBs have it too, and
        it costs one to two seconds over a million products' columns (ad-hoc, five attributes each,
        BENCHMARKS.md stop 27); a retriever reads it when it is made."""
        return listed_prices(self.entity_table)

    @functools.cached_property
    def name_numbers(self) -> NameNumbers:
        """The numbers of each product's name, for the numbers channel (read like `prices`)."""
        return NameNumbers(self.entity_table.column("name").to_pylist())

    @functools.cached_property
    def code_texts(self) -> pa.LargeStringArray:
        """Each product's name and attribute values squeezed, for the codes channel
        (`retrieval.codes.product_code_texts`; read like `prices`)."""
        return product_code_texts(self.entity_table)

    @functools.cached_property
    def entity_table(self) -> pa.Table:
        """The entities as an Arrow table (`schema.entities_to_table`), what the KB-wide readers
        above read: a loaded KB's own columns; a KB built in memory converted once."""
        if isinstance(self.entities, EntityTable):
            return self.entities.table
        return entities_to_table(list(self.entities))

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        """Entity id -> row of the arrays."""
        return {e: i for i, e in enumerate(self.ids)}

    def image_scores(self, photos: np.ndarray, entity_rows, image_emb: np.ndarray | None = None) -> np.ndarray:
        """Per entity row, the max cosine over (photo, entity image) pairs — the paper's image
        score; NaN for an entity without images. `image_emb` replaces the KB's image vectors
        (the disambiguation adapter's view of them), row for row."""
        images = self.image_emb if image_emb is None else image_emb
        rows = [self.image_rows(int(e)) for e in entity_rows]
        scores = np.full(len(rows), np.nan, dtype=np.float32)
        flat = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        if len(flat) == 0 or len(photos) == 0:
            return scores
        sims = (images[flat] @ photos.T).max(axis=1)
        np.fmax.at(scores, np.repeat(np.arange(len(rows)), [len(r) for r in rows]), sims)
        return scores


def center_images(raw: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Subtract the KB's mean image embedding and re-normalise.

    Image embeddings crowd into a narrow cone (random-init towers especially: pairwise cosines
    around 0.97); centring spreads them so inner products rank by what differs.
    """
    if len(raw) == 0:
        return raw.astype(np.float32)
    x = raw - center[None, :]
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(x, dtype=np.float32)


def assemble_kb(
    entities: list[Entity],
    text_emb: np.ndarray,
    raw_image_emb: np.ndarray,
    image_owner: np.ndarray,
    *,
    name: str,
    text_model: str,
    image_model: str,
    image_fingerprint: str,
    index_settings: IndexSettings,
    text_fingerprint: str = "",
    lexical: bool = True,
    chargram: bool = True,
    entity_ocr: list[str] | None = None,
    build_info: dict | None = None,
) -> KnowledgeBase:
    """Indexes embeddings computed elsewhere (in-process or by Ray Data) into a KnowledgeBase."""
    if len(text_emb) != len(entities):
        raise ValueError(f"{len(text_emb)} text embeddings for {len(entities)} entities")
    image_dim = raw_image_emb.shape[1] if raw_image_emb.ndim == 2 else 0
    center = raw_image_emb.mean(axis=0) if len(raw_image_emb) else np.zeros(image_dim, np.float32)
    image_emb = center_images(raw_image_emb, center)
    text_index = vindex.build_index(text_emb, index_settings)
    image_index = vindex.build_index(image_emb.reshape(len(image_emb), image_dim), index_settings)
    # text printed on product images (box labels, model numbers) is searchable evidence too
    docs = [e.text() + (f". {entity_ocr[i]}" if entity_ocr and entity_ocr[i] else "") for i, e in enumerate(entities)]
    lex = LexicalIndex.build(docs) if lexical else None
    grams = CharGramIndex.build([entity_doc_text(e) for e in entities]) if chargram else None
    vocabulary = AttributeVocabulary.build(entities)
    manifest = KBManifest(
        name=name,
        version="unsaved",
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        text_model=text_model,
        text_dim=int(text_emb.shape[1]),
        text_fingerprint=text_fingerprint,
        image_model=image_model,
        image_dim=int(image_dim),
        image_fingerprint=image_fingerprint,
        n_entities=len(entities),
        n_images=len(image_emb),
        text_index=vindex.index_kind(text_index),
        image_index=vindex.index_kind(image_index),
        text_index_params=vindex.describe(text_index),
        image_index_params=vindex.describe(image_index),
        lexical=lex is not None,
        chargram=grams is not None,
        files={},
        build=build_info or {},
    )
    return KnowledgeBase(
        entities=entities,
        text_emb=np.ascontiguousarray(text_emb, dtype=np.float32),
        image_emb=image_emb,
        image_owner=np.asarray(image_owner, dtype=np.int32),
        image_center=center.astype(np.float32),
        text_index=text_index,
        image_index=image_index,
        lexical=lex,
        vocabulary=vocabulary,
        manifest=manifest,
        chargram=grams,
    )


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes, what: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise InputFormatError(f"{what}: not a plain .npy array ({exc})") from None


def write_kb(kb: KnowledgeBase, root_uri: str, store: ObjectStore, version: str | None = None) -> str:
    """Writes a new version under `root_uri`, then points LATEST at it. Returns the version URI.
    An explicit `version` that already exists there is refused."""
    # functions, not bytes: each file is serialised when written and dropped after (write_version)
    files: dict[str, Callable[[], bytes]] = {
        "entities.parquet": lambda: parquet_bytes(
            kb.entities.table if isinstance(kb.entities, EntityTable) else entities_to_table(list(kb.entities))),
        "text_embeddings.npy": lambda: _npy(kb.text_emb),
        "image_embeddings.npy": lambda: _npy(kb.image_emb),
        "image_owner.npy": lambda: _npy(kb.image_owner),
        "image_center.npy": lambda: _npy(kb.image_center),
        "text.faiss": lambda: vindex.serialize(kb.text_index),
        "image.faiss": lambda: vindex.serialize(kb.image_index),
        "attributes.json": lambda: json.dumps(kb.vocabulary.to_json(), ensure_ascii=False).encode("utf-8"),
    }
    if kb.chargram is not None:
        files.update(kb.chargram.lazy_files())
    with tempfile.TemporaryDirectory() as tmp:  # bm25s saves through files of its own format
        if kb.lexical is not None:
            for path in kb.lexical.save(Path(tmp)):
                files[f"lexical/{path.name}"] = path.read_bytes
        version_uri, kb.manifest = write_version(root_uri, store, files, kb.manifest, version=version)
    return version_uri


def read_manifest(uri: str, store: ObjectStore) -> tuple[str, KBManifest]:
    return read_versioned_manifest(uri, store, KBManifest, "KB", KB_FORMAT_VERSION)


def load_kb(uri: str, store: ObjectStore, index_settings: IndexSettings | None = None) -> KnowledgeBase:
    """Reads and verifies a KB (the version folder, or a root whose LATEST is followed). With
    `index.mmap_dir`, the embeddings and dense indexes are memory-mapped from verified local copies."""
    index_settings = index_settings or IndexSettings()
    version_uri, manifest = read_manifest(uri, store)

    def read(name: str) -> bytes:
        return read_verified(version_uri, manifest, name, store, "KB")

    mapped = None
    if index_settings.mmap_dir:
        # one folder per version: its name is the version URI's hash, so two KBs never share files
        mapped = Path(index_settings.mmap_dir).expanduser() / hashlib.sha256(version_uri.encode()).hexdigest()[:16]

    def array(name: str) -> np.ndarray:
        if mapped is None:
            return _from_npy(read(name), name)
        return _map_npy(fetch_verified(version_uri, manifest, name, store, "KB", mapped), name)

    def index(name: str, recorded: dict) -> faiss.Index:  # `recorded`: the knobs the build set
        if mapped is None:
            loaded = vindex.deserialize(read(name), index_settings, recorded)
        else:
            loaded = vindex.read_mapped(fetch_verified(version_uri, manifest, name, store, "KB", mapped), index_settings,
                                        recorded)
        return vindex.to_gpu(loaded, index_settings)  # itself unless index.device=cuda

    entities = EntityTable(pq.read_table(io.BytesIO(read("entities.parquet"))))
    lexical = None
    if manifest.lexical:
        lexical = LexicalIndex.load_files(
            {n.split("/", 1)[1]: read(n) for n in manifest.files if n.startswith("lexical/")}
        )
    kb = KnowledgeBase(
        entities=entities,
        text_emb=array("text_embeddings.npy"),
        image_emb=array("image_embeddings.npy"),
        image_owner=_from_npy(read("image_owner.npy"), "image_owner.npy"),
        image_center=_from_npy(read("image_center.npy"), "image_center.npy"),
        text_index=index("text.faiss", manifest.text_index_params),
        image_index=index("image.faiss", manifest.image_index_params),
        lexical=lexical,
        vocabulary=_vocabulary(read("attributes.json"), version_uri),
        manifest=manifest,
        chargram=CharGramIndex.from_files({n: read(n) for n in CHARGRAM_FILES}) if manifest.chargram else None,
    )
    if len(kb.entities) != manifest.n_entities or len(kb.text_emb) != manifest.n_entities:
        raise InputFormatError(f"KB at {version_uri}: entity count does not match its manifest")
    return kb


def _map_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise InputFormatError(f"{what}: not a plain .npy array ({exc})") from None


def _vocabulary(data: bytes, version_uri: str) -> AttributeVocabulary:
    try:
        return AttributeVocabulary.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFormatError(f"{version_uri}/attributes.json is not a valid attribute vocabulary: {exc}") from None
