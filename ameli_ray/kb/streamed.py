"""A KB built from a stream of entity batches, never holding every entity: how `build-kb` builds
a catalogue of any size, with Ray Data or in-process.

    batches (entities, text embeddings, image embeddings, OCR text)
      ──add──>    a local spill: entities.parquet row groups, raw float32 embeddings, the two
                  lexical documents of each entity as JSON lines, the running sum of the images
      ──finish──> text_embeddings.npy and centred image_embeddings.npy written chunk by chunk;
                  each dense index trained on a sample and filled chunk by chunk, read from
                  those files (never mapped: mapped pages would count as the build's memory); BM25, the char n-grams and the attribute vocabulary
                  built from the spilled documents, one after the other; every file uploaded
                  streamed; then the manifest and LATEST (`storage.versioned.write_version`)

The builder holds one batch while adding, then one index or one lexical structure at a time:
never the entities, never two large parts together. Entity ids are checked across all batches
(a repeated id is set aside, the first record kept). For the same entities in the same order it
writes the KB `assemble_kb` + `write_kb` write (tests/kb/test_streamed.py).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ameli_ray.attributes.vocabulary import AttributeVocabulary
from ameli_ray.config import IndexSettings
from ameli_ray.errors import InputFormatError
from ameli_ray.kb.assets import KBManifest, center_images
from ameli_ray.retrieval import index as vindex
from ameli_ray.retrieval.chargram import CharGramIndex, entity_doc_text
from ameli_ray.retrieval.lexical import LexicalIndex
from ameli_ray.schema import ENTITY_ARROW_SCHEMA, Entity, entities_from_table, entities_to_table
from ameli_ray.storage import ObjectStore
from ameli_ray.storage.versioned import write_version

CHUNK_ROWS = 65_536  # embedding rows per copy / index add: 96 MiB of 384-d float32
ROW_GROUP_ROWS = 65_536  # entities per row group of entities.parquet
REJECTED = "rejected.jsonl"
MAX_ERROR_SAMPLES = 10


class StreamedKBBuilder:
    """Collects a KB's entities batch by batch in `spill` (a local folder with room for the
    embeddings twice over), then indexes and writes them as a KB version (`finish`)."""

    def __init__(self, spill: Path, text_dim: int, image_dim: int):
        self.spill = Path(spill)
        self.spill.mkdir(parents=True, exist_ok=True)
        self.text_dim, self.image_dim = text_dim, image_dim
        self.n_entities = 0
        self.n_images = 0
        self.rejected: list[dict] = []  # {"source", "position", "error"}: few, so kept
        self.image_errors = 0
        self.error_samples: list[str] = []
        self._ids: set[str] = set()
        self._image_sum = np.zeros(image_dim, np.float64)
        # zstd, as every other entity table (storage.parquet_bytes); rows gathered into groups of
        # ROW_GROUP_ROWS, since a Ray block of a few dozen entities makes a poor row group
        self._entities = pq.ParquetWriter(self.spill / "entities.parquet", ENTITY_ARROW_SCHEMA, compression="zstd")
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._text = (self.spill / "text.f32").open("wb")
        self._images = (self.spill / "images.f32").open("wb")
        self._owner = (self.spill / "owner.i32").open("wb")
        self._bm25_docs = (self.spill / "bm25_docs.jsonl").open("w", encoding="utf-8")
        self._gram_docs = (self.spill / "chargram_docs.jsonl").open("w", encoding="utf-8")
        self._open = True

    # -- collecting ---------------------------------------------------------------------------
    def reject(self, rejected: Sequence[dict]) -> None:
        """Records set aside upstream (a reader's bad lines): kept for the version's rejected.jsonl."""
        self.rejected.extend(rejected)

    def add(self, entities: Sequence[Entity], text_emb: np.ndarray, image_emb: Sequence[np.ndarray],
            ocr_text: Sequence[str] | None = None, sources: Sequence[tuple[str, int]] | None = None,
            errors: Sequence[Sequence[str]] | None = None) -> None:
        """One batch: per entity its text embedding (a row of `text_emb`), its raw image embeddings
        ([k, image_dim], k >= 0), the text read on its images, where it came from (shard URI,
        position) and its image errors. An id seen before is set aside, not added."""
        if not self._open:
            raise RuntimeError("this KB builder has finished")
        if len(text_emb) != len(entities) or len(image_emb) != len(entities):
            raise ValueError(f"{len(text_emb)} text and {len(image_emb)} image embeddings for {len(entities)} entities")
        for errs in errors or ():
            self.image_errors += len(errs)
            self.error_samples.extend(errs[: MAX_ERROR_SAMPLES - len(self.error_samples)])
        keep = []
        for i, e in enumerate(entities):
            if e.id in self._ids:
                source, position = sources[i] if sources is not None else ("", None)
                self.rejected.append({"source": source, "position": position,
                                      "error": f"duplicate entity id {e.id!r}: an earlier record with it is kept"})
                continue
            self._ids.add(e.id)
            keep.append(i)
        if not keep:
            return
        kept = [entities[i] for i in keep]
        self._pending.append(entities_to_table(kept))
        self._pending_rows += len(kept)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush_entities()
        self._text.write(np.ascontiguousarray(np.asarray(text_emb, np.float32)[keep]).tobytes())
        for row, i in enumerate(keep, start=self.n_entities):
            images = np.asarray(image_emb[i], np.float32)
            if images.size:
                images = images.reshape(-1, self.image_dim)
                self._images.write(np.ascontiguousarray(images).tobytes())
                self._owner.write(np.full(len(images), row, np.int32).tobytes())
                self._image_sum += images.sum(axis=0, dtype=np.float64)
                self.n_images += len(images)
        for i, e in zip(keep, kept):
            # text printed on product images (box labels, model numbers) is searchable evidence too
            ocr = ocr_text[i] if ocr_text else ""
            self._bm25_docs.write(json.dumps(e.text() + (f". {ocr}" if ocr else ""), ensure_ascii=False) + "\n")
            self._gram_docs.write(json.dumps(entity_doc_text(e), ensure_ascii=False) + "\n")
        self.n_entities += len(kept)

    # -- writing ------------------------------------------------------------------------------
    def finish(
        self, root_uri: str, store: ObjectStore, *, name: str, text_model: str, image_model: str,
        image_fingerprint: str, index_settings: IndexSettings, text_fingerprint: str = "", lexical: bool = True,
        chargram: bool = True, build_info: dict | None = None, version: str | None = None,
    ) -> tuple[str, KBManifest]:
        """Indexes what was added and writes it as a new KB version under `root_uri`.
        Returns (version URI, manifest)."""
        self._close()
        if self.n_entities == 0:
            raise InputFormatError(
                "no valid entities to build a KB from"
                + (f" ({len(self.rejected)} set aside, e.g. {self.rejected[0]['error']})" if self.rejected else "")
            )
        start = time.perf_counter()
        out = self.spill / "kb"
        out.mkdir(exist_ok=True)
        n, n_images = self.n_entities, self.n_images
        files: dict[str, Path] = {"entities.parquet": self.spill / "entities.parquet"}

        text = _npy_from_raw(self.spill / "text.f32", out / "text_embeddings.npy", (n, self.text_dim))
        files["text_embeddings.npy"] = text
        text_params = _write_index(vindex.NpyRows(text), index_settings, out / "text.faiss")
        files["text.faiss"] = out / "text.faiss"

        center = (self._image_sum / n_images).astype(np.float32) if n_images else np.zeros(self.image_dim, np.float32)
        image = out / "image_embeddings.npy"
        _centred_npy(self.spill / "images.f32", image, (n_images, self.image_dim), center)
        files["image_embeddings.npy"] = image
        image_params = _write_index(vindex.NpyRows(image), index_settings, out / "image.faiss")
        files["image.faiss"] = out / "image.faiss"
        files["image_owner.npy"] = _npy_from_raw(self.spill / "owner.i32", out / "image_owner.npy", (n_images,), np.int32)
        np.save(out / "image_center.npy", center, allow_pickle=False)
        files["image_center.npy"] = out / "image_center.npy"

        # the lexical structures one at a time, each written to disk and dropped before the next
        if lexical:
            paths = LexicalIndex.build(_json_lines(self.spill / "bm25_docs.jsonl")).save(out / "lexical")
            files.update({f"lexical/{p.name}": p for p in paths})
        if chargram:
            grams = CharGramIndex.build(_json_lines(self.spill / "chargram_docs.jsonl"), spill=self.spill)
            for file_name, make in grams.lazy_files().items():
                (out / file_name).parent.mkdir(parents=True, exist_ok=True)
                (out / file_name).write_bytes(make())
                files[file_name] = out / file_name
            del grams
        vocabulary = AttributeVocabulary.build(self._entities_back())
        (out / "attributes.json").write_text(json.dumps(vocabulary.to_json(), ensure_ascii=False), encoding="utf-8")
        files["attributes.json"] = out / "attributes.json"
        del vocabulary
        if self.rejected:
            (out / REJECTED).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rejected))
            files[REJECTED] = out / REJECTED
        index_s = time.perf_counter() - start

        manifest = KBManifest(
            name=name, version="unsaved", created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            text_model=text_model, text_dim=self.text_dim, text_fingerprint=text_fingerprint,
            image_model=image_model, image_dim=self.image_dim, image_fingerprint=image_fingerprint,
            n_entities=n, n_images=n_images, text_index=str(text_params["kind"]), image_index=str(image_params["kind"]),
            text_index_params=text_params, image_index_params=image_params, lexical=lexical, chargram=chargram,
            build={**(build_info or {}), "streamed": 1, "rejected": len(self.rejected), "index_seconds": round(index_s, 3)},
        )
        return write_version(root_uri, store, files, manifest, version=version)

    def _flush_entities(self) -> None:
        if self._pending:
            self._entities.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP_ROWS)
            self._pending, self._pending_rows = [], 0

    def _close(self) -> None:
        if self._open:
            self._flush_entities()
            self._entities.close()
            for f in (self._text, self._images, self._owner, self._bm25_docs, self._gram_docs):
                f.close()
            self._open = False

    def _entities_back(self) -> Iterator[Entity]:
        for batch in pq.ParquetFile(self.spill / "entities.parquet").iter_batches(batch_size=4096):
            yield from entities_from_table(batch)


def _json_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def _npy_header(f, shape: tuple[int, ...], dtype) -> None:
    np.lib.format.write_array_header_1_0(
        f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})


def _raw_chunks(raw: Path, dtype, row_values: int, rows: int) -> Iterator[np.ndarray]:
    """`rows` rows of `row_values` values from a file of raw values, CHUNK_ROWS at a time, read
    (not mapped: mapped pages would count in this process's RSS)."""
    with raw.open("rb") as f:
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            yield np.fromfile(f, dtype, count * row_values).reshape(count, row_values)


def _npy_from_raw(raw: Path, npy: Path, shape: tuple[int, ...], dtype=np.float32) -> Path:
    """`raw` (C-order values, as appended) as a .npy file of `shape`, copied chunk by chunk."""
    row_values = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    with npy.open("wb") as out:
        _npy_header(out, shape, dtype)
        for chunk in _raw_chunks(raw, dtype, row_values, shape[0]):
            out.write(chunk.tobytes())
    return npy


def _centred_npy(raw: Path, npy: Path, shape: tuple[int, int], center: np.ndarray) -> None:
    with npy.open("wb") as out:
        _npy_header(out, shape, np.float32)
        for chunk in _raw_chunks(raw, np.float32, shape[1], shape[0]):
            out.write(center_images(chunk, center).tobytes())


def _write_index(vectors: vindex.NpyRows, settings: IndexSettings, path: Path) -> dict:
    index = vindex.build_index(vectors, settings)
    faiss.write_index(index, str(path))
    return vindex.describe(index)
