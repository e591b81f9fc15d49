"""The character n-gram channel: TF-IDF over char 2-4-grams inside word boundaries.

Character n-grams match model codes across separators and spellings ("DCS-1130" vs "dcs1130",
"128GB" vs "128 GB", "Cyber-shot" vs "Cybershot") where BM25's tokens and a sentence encoder
both miss; as a baseline on its own it beat our whole retriever on Abt->Buy and Amazon->Google
(`ameli_ray.evaluation.baseline`). Here it is one more retrieval channel.

What is compared (measured as the baseline; see `mention_query_text` and `entity_doc_text`):
the mention's product name as written and its text, against the entity's name and attribute
values without price.

The weights are sklearn's `TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4),
sublinear_tf=True)` fitted on the entity documents. They are stored as plain arrays (the n-gram
list as JSON, the idf and an inverted index as .npy: no pickle) and a query is vectorised here
with the same arithmetic as sklearn's `transform` (a test holds the two equal). The inverted
index (n-gram -> the entities that hold it, CSR) makes a query cost the postings of its own
n-grams, not a pass over every entity.
"""

from __future__ import annotations

import io
import json
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ameli_ray.errors import InputFormatError
from ameli_ray.schema import Entity, Mention

NGRAM_RANGE = (2, 4)
FILES = ("chargram/ngrams.json", "chargram/idf.npy", "chargram/postings_data.npy",
         "chargram/postings_indices.npy", "chargram/postings_indptr.npy")


def mention_query_text(mention: Mention) -> str:
    """The mention's product name as written (`surface`) followed by its `text`; the text alone
    when there is no surface form.

    Measured (char TF-IDF top-1 over all mentions; with `entity_doc_text`): on Abt->Buy surface +
    text 0.882, surface alone 0.852, text alone 0.852; Walmart->Amazon 0.887 / 0.732 / 0.909;
    Amazon->Google 0.685 / 0.731 / 0.656. Surface + text is the strongest on Abt->Buy and the only
    variant within 0.05 of the best on every set: the EM mention text adds the record's brand /
    model number / description fields after the title (so the title counts twice), and on the demo
    catalogue the surface is often just "this" or "the <series>" while the review text states the
    attributes.
    """
    return query_text(mention.surface, mention.text)


def query_text(surface: str, text: str) -> str:
    surface = surface.strip()
    return f"{surface} {text}" if surface else text


def entity_doc_text(entity: Entity) -> str:
    """The entity's name and its attribute values, space-separated: no value that repeats the
    name, no price, no keys and no description.

    Attribute values hold the brand, model number and manufacturer that decide between
    near-duplicates. Prices are left out: their digit n-grams ("99", ".9") match unrelated products
    and two shops' prices for one product differ anyway (top-1 without / with them: Abt->Buy 0.882 /
    0.862, Amazon->Google 0.685 / 0.660, Walmart->Amazon 0.887 / 0.887). The description buys 2
    more of Abt->Buy's 1,076 mentions (0.884) but costs Amazon->Google 0.08 (0.685 -> 0.602), so it
    stays out.
    """
    values = [v for k, v in entity.attributes.items() if v and v != entity.name and k.strip().lower() != "price"]
    return " ".join([entity.name, *values])


class CharGramIndex:
    """Char n-gram TF-IDF vectors of a fixed list of documents, searchable by cosine."""

    def __init__(self, ngrams: list[str], idf: np.ndarray, postings):
        from sklearn.feature_extraction.text import CountVectorizer

        if len(ngrams) != len(idf) or postings.shape[0] != len(ngrams):
            raise InputFormatError(
                f"char n-gram index: {len(ngrams)} n-grams, {len(idf)} idf weights, {postings.shape[0]} posting lists"
            )
        self.ngrams = ngrams
        self.idf = np.asarray(idf, dtype=np.float32)
        self.postings = postings  # scipy CSR [n_ngrams, n_docs]: each document's L2-normalised weight
        # a fixed vocabulary: counting needs no fit, and unknown n-grams are dropped
        self._counter = CountVectorizer(
            analyzer="char_wb", ngram_range=NGRAM_RANGE, vocabulary={g: i for i, g in enumerate(ngrams)},
            dtype=np.float32,
        )

    @classmethod
    def build(cls, texts: Iterable[str], spill: Path | None = None) -> "CharGramIndex":
        """The index of `texts`, read once: sklearn's `TfidfVectorizer` weights (a test holds
        them equal), built in two passes over compact arrays.

        sklearn's `fit_transform` then a transpose peaks at 4.4 GB over its input for a million
        products (bench/kb_scale.py). Here the first pass counts each document's n-grams and
        writes (n-gram id, count) pairs to a file in `spill` (a temporary folder by default);
        the second reads them back a chunk of documents at a time and writes each weight straight
        into its place in the posting lists. What is held: the n-gram list and the postings.
        """
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer

        analyzer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE).build_analyzer()
        vocab: dict[str, int] = {}
        lengths = array("q")  # distinct n-grams per document
        with tempfile.TemporaryDirectory(prefix="chargram-", dir=spill) as tmp:
            pairs_path = Path(tmp) / "pairs.i32"
            with pairs_path.open("wb") as pairs_file:
                pending = array("i")  # n-gram id, count, n-gram id, count, ...
                for text in texts:
                    counts = Counter(analyzer(text))
                    for gram, count in counts.items():
                        pending.append(vocab.setdefault(gram, len(vocab)))
                        pending.append(count)
                    lengths.append(len(counts))
                    if len(pending) >= 1 << 22:
                        pending.tofile(pairs_file)
                        pending = array("i")
                pending.tofile(pairs_file)
            n_docs, n_grams = len(lengths), len(vocab)
            if n_grams == 0:  # no document has a single n-gram (an empty KB, or blank names only)
                return cls([], np.zeros(0, np.float32), sparse.csr_matrix((0, n_docs), dtype=np.float32))
            ngrams = sorted(vocab)  # sklearn's column order
            column = np.empty(n_grams, np.int32)
            column[np.fromiter((vocab[g] for g in ngrams), np.int64, n_grams)] = np.arange(n_grams, dtype=np.int32)
            del vocab
            lengths_np = np.frombuffer(lengths, np.int64)
            from ameli_ray.retrieval.index import NpyRows

            # read back a chunk at a time, not mapped: mapped pages would count as this process's memory
            return cls(ngrams, *_tfidf_postings(NpyRows.raw(pairs_path, np.int32, 2), lengths_np, column))

    @property
    def num_docs(self) -> int:
        return int(self.postings.shape[1])

    def vectors(self, texts: list[str]):
        """TF-IDF rows of `texts` (CSR, L2-normalised) exactly as sklearn's `transform` makes them."""
        from scipy import sparse
        from sklearn.preprocessing import normalize

        if not self.ngrams:
            return sparse.csr_matrix((len(texts), 0), dtype=np.float32)
        counts = self._counter.transform(texts).tocsr()
        counts.data = (1.0 + np.log(counts.data)) * self.idf[counts.indices]  # sublinear tf x idf
        return normalize(counts, norm="l2", copy=False)

    def scores(self, query: str) -> np.ndarray:
        """Cosine of the query with every document, float32 [num_docs]; all zero when the query
        shares no n-gram with the KB."""
        return self.scores_many([query])[0]

    def scores_many(self, queries: list[str]) -> np.ndarray:
        """[len(queries), num_docs] cosines (dense: meant for batches of a few dozen queries)."""
        if not self.ngrams:
            return np.zeros((len(queries), self.num_docs), dtype=np.float32)
        return np.asarray((self.vectors(queries) @ self.postings).toarray(), dtype=np.float32)

    def fitted_idf(self, texts: Iterable[str]) -> np.ndarray:
        """The idf of this index's n-grams had it been fitted on its documents and `texts` together
        (sklearn's smooth idf, `ln((1 + n) / (1 + df)) + 1`; `texts` = () gives the stored one).

        A KB built before any review weighs n-grams by how rare they are among products alone.
        Fitted on the reviews a model trains and tunes on as well, the n-grams every review writes
        ("great", "works", the shop's boilerplate) weigh less. Char TF-IDF top-1 on the held-out
        20% of Abt->Buy: 0.802 fitted on the KB, 0.880 on the KB and the train + dev mentions (the
        held-out ones never seen), 0.885 on all mentions; Amazon->Google 0.661 / 0.678 / 0.674;
        Walmart->Amazon 0.896 / 0.896 / 0.890 (BENCHMARKS.md, issue 10)."""
        df = np.diff(self.postings.indptr).astype(np.float64)  # documents holding each n-gram
        n = self.num_docs
        texts = list(texts)
        if texts and self.ngrams:
            present = self._counter.transform(texts).tocsc()
            df += np.diff(present.indptr)  # texts holding each n-gram (a column's entries)
            n += len(texts)
        return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)

    def with_idf(self, idf: np.ndarray, chunk: int = 1 << 23) -> "CharGramIndex":
        """The same documents weighted by another idf over the same n-grams (`fitted_idf`). Each
        posting is tf x idf / norm, so it is rescaled by new / old idf and each document
        normalised again: O(postings), no text read again. The new index shares the n-gram list
        and the posting structure with this one and holds one new float32 per posting (a
        million products: 0.9 GB); the work goes `chunk` postings at a time, so its temporaries
        stay small."""
        from scipy import sparse

        idf = np.asarray(idf, dtype=np.float32)
        if idf.shape != self.idf.shape:
            raise InputFormatError(f"char n-gram idf: {len(idf)} weights for an index of {len(self.idf)} n-grams")
        p = self.postings
        ratio = np.divide(idf, self.idf, out=np.ones_like(idf), where=self.idf > 0)
        data = p.data.astype(np.float32, copy=True)
        # row (n-gram) ranges of about `chunk` postings each
        bounds = np.unique(np.searchsorted(p.indptr, np.arange(0, p.nnz, chunk), side="right") - 1)
        ranges = list(zip(bounds, [*bounds[1:], p.shape[0]]))
        squares = np.zeros(p.shape[1], np.float64)
        for r0, r1 in ranges:
            lo, hi = p.indptr[r0], p.indptr[r1]
            part = data[lo:hi]
            part *= np.repeat(ratio[r0:r1], np.diff(p.indptr[r0 : r1 + 1]))
            squares += np.bincount(p.indices[lo:hi], weights=np.square(part, dtype=np.float64), minlength=p.shape[1])
        inverse = np.divide(1.0, np.sqrt(squares), out=np.ones_like(squares), where=squares > 0).astype(np.float32)
        for r0, r1 in ranges:
            lo, hi = p.indptr[r0], p.indptr[r1]
            data[lo:hi] *= inverse[p.indices[lo:hi]]
        return CharGramIndex(self.ngrams, idf, sparse.csr_matrix((data, p.indices, p.indptr), shape=p.shape, copy=False))

    def files(self) -> dict[str, bytes]:
        """Name -> bytes of the stored form (JSON and .npy, no pickle)."""
        return {name: make() for name, make in self.lazy_files().items()}

    def lazy_files(self) -> dict:
        """Name -> a function making that file's bytes: a KB writes one file at a time."""
        p = self.postings
        return {
            FILES[0]: lambda: json.dumps(self.ngrams, ensure_ascii=False).encode("utf-8"),
            FILES[1]: lambda: _npy(self.idf),
            FILES[2]: lambda: _npy(p.data.astype(np.float32, copy=False)),
            FILES[3]: lambda: _npy(p.indices.astype(np.int32, copy=False)),
            FILES[4]: lambda: _npy(np.concatenate([p.indptr, [p.shape[1]]]).astype(np.int64)),  # the last entry: n_docs
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> "CharGramIndex":
        from scipy import sparse

        missing = [n for n in FILES if n not in files]
        if missing:
            raise InputFormatError(f"char n-gram index: missing {', '.join(missing)}")
        try:
            ngrams = json.loads(files[FILES[0]])
            if not isinstance(ngrams, list) or not all(isinstance(g, str) for g in ngrams):
                raise ValueError("the n-gram list is not a JSON list of strings")
            idf, data, indices, indptr = (_from_npy(files[n]) for n in FILES[1:])
            n_docs, indptr = int(indptr[-1]), indptr[:-1]
            postings = sparse.csr_matrix((data, indices, indptr), shape=(len(ngrams), n_docs))
            postings.check_format(full_check=True)
        except (ValueError, TypeError, IndexError) as exc:
            raise InputFormatError(f"char n-gram index is not valid: {exc}") from None
        return cls(ngrams, idf, postings)


def idf_bytes(idf: np.ndarray) -> bytes:
    """An idf vector as a model stores it (.npy, float32)."""
    return _npy(np.asarray(idf, dtype=np.float32))


def idf_from_bytes(data: bytes) -> np.ndarray:
    """`idf_bytes` read back: a 1-D float32 array of finite positive weights, or InputFormatError."""
    try:
        idf = _from_npy(data)
    except ValueError as exc:
        raise InputFormatError(f"char n-gram idf is not a valid .npy file: {exc}") from None
    if idf.ndim != 1 or idf.dtype != np.float32 or not np.isfinite(idf).all() or (idf <= 0).any():
        raise InputFormatError(f"char n-gram idf must be 1-D finite positive float32, got {idf.dtype} {idf.shape}")
    return idf


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _tfidf_postings(pairs, lengths: np.ndarray, column: np.ndarray, chunk_docs: int = 8192):
    """(idf, postings CSR [n_grams, n_docs]) from each document's (n-gram id, count) rows
    (an [n, 2] array, or anything that slices rows like one: `index.NpyRows`),
    with sklearn's arithmetic: smooth idf ln((1 + n) / (1 + df)) + 1, sublinear tf 1 + ln(count),
    each document's weights L2-normalised; float32 as sklearn computes them."""
    from scipy import sparse

    n_docs, n_grams = len(lengths), len(column)
    ends = np.cumsum(lengths)
    df = np.zeros(n_grams, np.int64)
    for start in range(0, len(pairs), 1 << 22):
        df += np.bincount(column[pairs[start : start + (1 << 22)][:, 0]], minlength=n_grams)
    idf = np.full(n_grams, n_docs + 1, np.float32)
    idf /= df.astype(np.float32) + np.float32(1.0)
    np.log(idf, out=idf)
    idf += np.float32(1.0)
    indptr = np.zeros(n_grams + 1, np.int64)
    np.cumsum(df, out=indptr[1:])
    del df
    data = np.empty(int(indptr[-1]), np.float32)
    indices = np.empty(int(indptr[-1]), np.int32)
    fill = indptr[:-1].copy()  # where each n-gram's next posting goes
    for first in range(0, n_docs, chunk_docs):
        last = min(first + chunk_docs, n_docs)
        lo, hi = (int(ends[first - 1]) if first else 0), int(ends[last - 1])
        rows = pairs[lo:hi]
        grams = column[rows[:, 0]]
        weight = np.log(rows[:, 1].astype(np.float32))
        del rows
        weight += np.float32(1.0)
        weight *= idf[grams]
        doc = np.repeat(np.arange(first, last, dtype=np.int32), lengths[first:last])
        norms = np.sqrt(np.bincount(doc - first, weights=weight * weight, minlength=last - first)).astype(np.float32)
        norms[norms == 0] = 1.0
        weight /= norms[doc - first]
        order = np.argsort(grams, kind="stable")  # by n-gram, documents ascending within each
        grams, weight, doc = grams[order], weight[order], doc[order]
        run_start = np.searchsorted(grams, grams, side="left")  # each entry's rank within its n-gram's run
        dest = fill[grams] + (np.arange(len(grams)) - run_start)
        data[dest], indices[dest] = weight, doc
        fill += np.bincount(grams, minlength=n_grams)
    return idf, sparse.csr_matrix((data, indices, indptr), shape=(n_grams, n_docs))
