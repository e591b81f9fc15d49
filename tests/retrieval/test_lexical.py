from pathlib import Path

from ameli_ray.retrieval.lexical import LexicalIndex, tokenize


def test_tokenizer_joins_model_numbers_and_units():
    tokens = tokenize("D-Link DCS-1100 camera, 256 GB")
    assert {"dcs", "1100", "dcs1100", "256", "gb", "256gb"} <= set(tokens)


def test_model_number_written_differently_still_matches():
    index = LexicalIndex.build(["Epson lamp ELPLP12", "D-Link DCS1100 network camera", "Koss EQ50"])
    assert index.scores("dcs-1100").argmax() == 1
    assert index.scores("nothing known here").sum() == 0


def test_save_and_load_roundtrip(tmp_path: Path):
    index = LexicalIndex.build(["alpha 128GB", "beta 256GB"])
    files = index.save(tmp_path)
    assert all(f.suffix in (".json", ".npy") for f in files)  # no pickle
    restored = LexicalIndex.load_files({f.name: f.read_bytes() for f in files})
    assert (restored.scores("256 GB") == index.scores("256 GB")).all()


def test_build_scores_exactly_as_bm25s_indexes_from_a_stream():
    """The score matrix is built here from token-id arrays (a million products' worth of token
    lists would cost gigabytes in bm25s's own `index`); its scores are bm25s's, to the bit."""
    import bm25s
    import numpy as np

    from ameli_ray.retrieval.lexical import tokenize

    rng = np.random.default_rng(0)
    words = ["sony", "dcs-1130", "black", "256 gb", "camera", "case", "blue", "elplp12", "lamp", "the"]
    texts = [" ".join(rng.choice(words, rng.integers(1, 12))) for _ in range(400)] + ["", "!!"]
    ours = LexicalIndex.build(iter(texts))  # a generator: read once
    theirs = bm25s.BM25()
    theirs.index([tokenize(t) or ["<empty>"] for t in texts], show_progress=False)
    assert ours.num_docs == len(texts) and set(ours.bm25.vocab_dict) == set(theirs.vocab_dict)
    for query in ("sony dcs1130 black", "256gb case", "lamp the lamp", "unknown words"):
        tokens = [t for t in tokenize(query) if t in theirs.vocab_dict]
        expected = np.asarray(theirs.get_scores(tokens), np.float32) if tokens else np.zeros(len(texts), np.float32)
        np.testing.assert_array_equal(ours.scores(query), expected)
    assert LexicalIndex.build([]).num_docs == 1  # the placeholder document of an empty KB, as before
    # built in chunks of documents smaller than the corpus, the matrix is the same
    from ameli_ray.retrieval.lexical import _bm25_matrix

    vocab: dict[str, int] = {}
    ids = [vocab.setdefault(t, len(vocab)) for text in texts for t in (tokenize(text) or ["<empty>"])]
    lengths = np.array([len(tokenize(text) or ["<empty>"]) for text in texts])
    whole = _bm25_matrix(np.array(ids, np.int32), lengths, len(vocab), 1.5, 0.75)
    chunked = _bm25_matrix(np.array(ids, np.int32), lengths, len(vocab), 1.5, 0.75, chunk_docs=7)
    for key in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(chunked[key], whole[key])
