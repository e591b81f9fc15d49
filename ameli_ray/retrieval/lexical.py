"""The lexical channel: BM25 (bm25s) over entity text, with a tokenizer for product search.

Dense encoders blur exact tokens; product search lives on them ("ELPLP12", "256GB", "DCS-1100").
The tokenizer keeps alphanumeric runs and adds, for tokens with separators or digits, the joined
form, so "DCS-1100", "dcs 1100" and "DCS1100" meet, and "256 GB" meets "256GB".
"""

from __future__ import annotations

import logging
import re
import tempfile
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
    def build(cls, texts: list[str]) -> "LexicalIndex":
        bm25 = bm25s.BM25()
        # bm25s cannot index an empty vocabulary; a placeholder token keeps empty KBs valid
        corpus = [tokenize(t) or ["<empty>"] for t in texts] or [["<empty>"]]
        bm25.index(corpus, show_progress=False)
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
