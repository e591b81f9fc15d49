"""The lexical channel: BM25 (bm25s) over entity text, with a tokenizer for product search.

Dense encoders blur exact tokens; product search lives on them ("ELPLP12", "256GB", "DCS-1100").
The tokenizer keeps alphanumeric runs and adds, for tokens with separators or digits, the joined
form, so "DCS-1100", "dcs 1100" and "DCS1100" meet, and "256 GB" meets "256GB".
"""

from __future__ import annotations

import logging
import re
import tempfile
from array import array
from collections.abc import Iterable
from pathlib import Path

import bm25s
import numpy as np

# bm25s logs every index build at DEBUG through the root logger's handlers; users need none of it
logging.getLogger("bm25s").setLevel(logging.WARNING)

_WORD = re.compile(r"[a-z0-9]+(?:[-./][a-z0-9]+)*")
_UNIT = re.compile(r"^(?:gb|tb|mb|in|inch|mm|cm|w|mah|hz|ghz|mp|oz|lb|lbs|ft)$")


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    words = _WORD.findall(text.lower())
    for i, word in enumerate(words):
        parts = re.split(r"[-./]", word)
        tokens.extend(p for p in parts if p)
        if len(parts) > 1:
            tokens.append("".join(parts))  # the model number without separators
        # a number followed by a unit: "256 gb" -> also "256gb"
        if word.isdigit() and i + 1 < len(words) and _UNIT.match(words[i + 1]):
            tokens.append(word + words[i + 1])
    return tokens


class LexicalIndex:
    """BM25 over a fixed list of documents; scores for every document of a query."""

    def __init__(self, bm25: bm25s.BM25):
        self.bm25 = bm25

    @classmethod
    def build(cls, texts: Iterable[str]) -> "LexicalIndex":
        """BM25 (bm25s's defaults: Lucene's variant, k1 1.5, b 0.75) of `texts`, read once.

        The score matrix is computed here, with bm25s's arithmetic (a test holds the two equal),
        over one int32 array of token ids: bm25s's own `index` holds every document as a
        Python list of token strings and peaks 4.7 GB above its input for a million products
        (bench/kb_scale.py --components); the arrays here cost a fraction of that, and `texts`
        may be a stream.
        """
        vocab: dict[str, int] = {}
        ids = array("i")
        lengths = array("q")
        for text in texts:
            # bm25s cannot index an empty vocabulary; a placeholder token keeps empty KBs valid
            tokens = tokenize(text) or ["<empty>"]
            ids.extend(vocab.setdefault(t, len(vocab)) for t in tokens)
            lengths.append(len(tokens))
        if not lengths:
            vocab["<empty>"] = 0
            ids.append(0)
            lengths.append(1)
        bm25 = bm25s.BM25()
        bm25.scores = _bm25_matrix(np.frombuffer(ids, np.int32), np.frombuffer(lengths, np.int64), len(vocab),
                                   bm25.k1, bm25.b)
        vocab[""] = len(vocab)  # what bm25s.index adds: its placeholder for queries without a known token
        bm25.vocab_dict = vocab
        bm25.unique_token_ids_set = set(vocab.values())
        bm25.nonoccurrence_array = None
        return cls(bm25)

    @property
    def num_docs(self) -> int:
        return int(self.bm25.scores["num_docs"])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document, float32 [num_docs]; all zero when no token is known."""
        tokens = [t for t in tokenize(query) if t in self.bm25.vocab_dict]
        if not tokens:
            return np.zeros(self.num_docs, dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    def save(self, directory: Path) -> list[Path]:
        """Writes json + npy files (no pickle); returns them."""
        directory.mkdir(parents=True, exist_ok=True)
        self.bm25.save(str(directory))
        return sorted(p for p in directory.iterdir() if p.is_file())

    @classmethod
    def load_files(cls, files: dict[str, bytes]) -> "LexicalIndex":
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            bm25 = bm25s.BM25.load(tmp, allow_pickle=False, load_corpus=False, show_progress=False)
        return cls(bm25)


def _bm25_matrix(ids: np.ndarray, lengths: np.ndarray, n_vocab: int, k1: float, b: float,
                 chunk_docs: int = 65_536) -> dict:
    """bm25s's score matrix (CSC: a column of documents per token) from the documents' token ids,
    concatenated, and their lengths; the values bm25s's `build_index_from_ids` computes.

    Two passes over chunks of documents, so that no temporary is as long as the corpus: the first
    counts each chunk's (document, token) pairs, the second weighs them and writes each score
    straight into its token's column."""
    n_docs = len(lengths)
    ends = np.cumsum(lengths)
    parts = []  # per chunk: documents, tokens, term frequencies (int32), sorted by document
    df = np.zeros(n_vocab, np.int64)
    for first in range(0, n_docs, chunk_docs):
        last = min(first + chunk_docs, n_docs)
        lo, hi = (int(ends[first - 1]) if first else 0), int(ends[last - 1])
        doc = np.repeat(np.arange(first, last, dtype=np.int64), lengths[first:last])
        pairs, tf = np.unique(doc * n_vocab + ids[lo:hi], return_counts=True)
        tokens = (pairs % n_vocab).astype(np.int32)
        parts.append(((pairs // n_vocab).astype(np.int32), tokens, tf.astype(np.int32)))
        df += np.bincount(tokens, minlength=n_vocab)
    idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)  # bm25s: Lucene idf, kept as float32
    avg_len = lengths.mean()
    indptr = np.zeros(n_vocab + 1, np.int64)
    np.cumsum(df, out=indptr[1:])
    data = np.empty(int(indptr[-1]), np.float32)
    indices = np.empty(int(indptr[-1]), np.int32)
    fill = indptr[:-1].copy()  # where each token's next document goes
    parts.reverse()
    while parts:
        doc_of, token_of, tf = parts.pop()  # in document order, each dropped once placed
        # bm25s's Robertson/Lucene term weight, in float64 like bm25s, stored as float32
        tfc = tf / (k1 * ((1 - b) + b * lengths[doc_of] / avg_len) + tf)
        scores = (idf[token_of] * tfc).astype(np.float32)
        order = np.argsort(token_of, kind="stable")  # by token, documents ascending within each
        token_of = token_of[order]
        rank = np.arange(len(order)) - np.searchsorted(token_of, token_of, side="left")
        dest = fill[token_of] + rank
        data[dest], indices[dest] = scores[order], doc_of[order]
        fill += np.bincount(token_of, minlength=n_vocab)
    return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}
