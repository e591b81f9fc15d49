"""The char n-gram channel: sklearn's arithmetic, stored without pickle, model codes across spellings."""

import io

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from ameli_ray.errors import InputFormatError
from ameli_ray.retrieval.chargram import FILES, CharGramIndex, entity_doc_text, mention_query_text
from ameli_ray.schema import Entity, Mention

DOCS = ["Sony Cyber-shot DSC-W120 silver", "Canon PowerShot SD1100 IS", "Logitech MX Revolution mouse",
        "D-Link DCS-1130 wireless camera", "Apple iPod nano 8GB blue"]


def test_vectors_are_sklearns_tfidf_of_the_entity_fit():
    index = CharGramIndex.build(DOCS)
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(DOCS)
    queries = ["dcs1130 camera by d-link", "ipod nano 8 gb", "zzzz"]
    ours = index.vectors(queries).toarray()
    theirs = reference.transform(queries).toarray()[:, [reference.vocabulary_[g] for g in index.ngrams]]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_a_model_code_finds_its_product_across_separators():
    index = CharGramIndex.build(DOCS)
    scores = index.scores("dlink dcs1130 network cam")
    assert scores.shape == (len(DOCS),) and int(np.argmax(scores)) == 3
    assert not index.scores("\u2603\u2603").any()  # no shared n-gram: all zero


def test_stored_form_round_trips_without_pickle():
    index = CharGramIndex.build(DOCS)
    files = index.files()
    assert set(files) == set(FILES)
    for name, data in files.items():
        if name.endswith(".npy"):
            np.load(io.BytesIO(data), allow_pickle=False)  # plain arrays
    again = CharGramIndex.from_files(files)
    np.testing.assert_allclose(again.scores_many(["canon sd1100", "mx mouse"]), index.scores_many(["canon sd1100", "mx mouse"]))


def test_a_damaged_or_incomplete_index_is_refused_by_name():
    files = CharGramIndex.build(DOCS).files()
    with pytest.raises(InputFormatError, match="missing chargram/idf.npy"):
        CharGramIndex.from_files({k: v for k, v in files.items() if k != "chargram/idf.npy"})
    with pytest.raises(InputFormatError, match="not valid"):
        CharGramIndex.from_files({**files, "chargram/ngrams.json": b'{"not": "a list"}'})
    with pytest.raises(InputFormatError, match="index pointer"):
        CharGramIndex.from_files({**files, "chargram/ngrams.json": b'["ab"]'})


def test_an_empty_or_blank_kb_has_an_empty_index():
    for docs in ([], ["", " "]):
        index = CharGramIndex.build(docs)
        assert index.num_docs == len(docs)
        assert index.scores("anything").shape == (len(docs),)
        assert CharGramIndex.from_files(index.files()).num_docs == len(docs)


def test_texts_compared_are_name_values_without_price_and_surface_plus_text():
    e = Entity(id="e", name="Cam X", attributes={"brand": "Acme", "price": "99.99", "model": "Cam X", "code": "CX-1"})
    assert entity_doc_text(e) == "Cam X Acme CX-1"
    assert mention_query_text(Mention(id="m", text="love it", surface="the CX-1")) == "the CX-1 love it"
    assert mention_query_text(Mention(id="m", text="love it", surface=" ")) == "love it"


def test_the_two_pass_build_is_sklearns_fit_transform(tmp_path):
    """Built from a stream through a spill file, in chunks of documents: the n-grams, idf and
    postings of sklearn's `TfidfVectorizer.fit_transform` (transposed), blanks included."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from ameli_ray.retrieval.chargram import _tfidf_postings

    rng = np.random.default_rng(0)
    words = ["Sony", "DCS-1130", "black", "256GB", "Cyber-shot", "case", "ELPLP12", "lamp", "é", "the"]
    texts = [" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(500)] + ["", "  "]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, dtype=np.float32)
    expected = vectorizer.fit_transform(texts).T.tocsr()
    index = CharGramIndex.build(iter(texts), spill=tmp_path)
    assert index.ngrams == vectorizer.get_feature_names_out().tolist()
    np.testing.assert_allclose(index.idf, vectorizer.idf_, rtol=1e-6)
    assert (index.postings.indptr == expected.indptr).all() and (index.postings.indices == expected.indices).all()
    np.testing.assert_allclose(index.postings.data, expected.data, rtol=1e-5)
    assert not list(tmp_path.iterdir())  # the spill file is gone
    # chunks of documents smaller than the corpus place every posting where one chunk would
    pairs = []
    for text in texts:
        grams = vectorizer.build_analyzer()(text)
        pairs.extend((index.ngrams.index(g), grams.count(g)) for g in dict.fromkeys(grams))
    lengths = np.array([len(set(vectorizer.build_analyzer()(t))) for t in texts])
    idf, small = _tfidf_postings(np.array(pairs, np.int32).reshape(-1, 2), lengths, np.arange(len(index.ngrams), dtype=np.int32),
                                 chunk_docs=7)
    assert (small.indices == expected.indices).all()
    np.testing.assert_allclose(small.data, expected.data, rtol=1e-5)


REVIEWS = ["great little camera, the dsc-w120 works great", "my ipod nano 8 gb in blue works great",
           "great mouse, works great", "the dcs1130 camera by d-link works"]


def test_an_idf_fitted_with_the_reviews_too_is_sklearns_fit_on_both():
    index = CharGramIndex.build(DOCS)
    np.testing.assert_allclose(index.fitted_idf([]), index.idf, rtol=1e-6)  # no texts: the stored idf
    reweighted = index.with_idf(index.fitted_idf(REVIEWS))
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(DOCS + REVIEWS)
    columns = [reference.vocabulary_[g] for g in index.ngrams]
    np.testing.assert_allclose(reweighted.idf, reference.idf_[columns], rtol=1e-6)
    # every document's vector is sklearn's: the n-grams only reviews hold never occur in a document
    np.testing.assert_allclose(reweighted.postings.T.toarray(), reference.transform(DOCS).toarray()[:, columns], atol=1e-6)
    # an n-gram the reviews write often ("cam") now weighs less against one they never write ("mx")
    ratio = {g: reweighted.idf[index.ngrams.index(g)] / index.idf[index.ngrams.index(g)] for g in ("cam", " mx")}
    assert ratio["cam"] < ratio[" mx"]
    # and a review's ranking is sklearn's
    theirs = (reference.transform(REVIEWS) @ reference.transform(DOCS).T).toarray()
    np.testing.assert_array_equal(reweighted.scores_many(REVIEWS).argsort(axis=1), theirs.argsort(axis=1))
    # chunks of a few postings give the same weights as one pass
    np.testing.assert_allclose(index.with_idf(reweighted.idf, chunk=7).postings.toarray(), reweighted.postings.toarray(), rtol=1e-6)
    assert index.scores(REVIEWS[0]).shape == (len(DOCS),)  # the original index is untouched
    np.testing.assert_array_equal(index.idf, CharGramIndex.build(DOCS).idf)


def test_an_idf_of_another_length_or_a_damaged_file_is_refused():
    from ameli_ray.retrieval.chargram import idf_bytes, idf_from_bytes

    index = CharGramIndex.build(DOCS)
    with pytest.raises(InputFormatError, match="weights for an index of"):
        index.with_idf(index.idf[:-1])
    good = index.fitted_idf(REVIEWS)
    np.testing.assert_array_equal(idf_from_bytes(idf_bytes(good)), good)
    for bad in (b"not npy", idf_bytes(-good), idf_bytes(np.full(3, np.nan))):
        with pytest.raises(InputFormatError, match="char n-gram idf"):
            idf_from_bytes(bad)
