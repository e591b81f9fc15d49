"""The strongest simple baseline: character n-gram TF-IDF between mention and entity texts.

Character 2-4-grams inside word boundaries (sklearn `TfidfVectorizer(analyzer="char_wb")`, sublinear
tf), fitted on the entity and the mention texts together; each mention's entities are ranked by
cosine similarity. Character n-grams match model codes across separators and spellings ("DCS-1130"
vs "dcs1130", "128GB" vs "128 GB") where word n-grams see different tokens: top-1 over all mentions
0.882 on Abt->Buy and 0.685 on Amazon->Google against 0.682 and 0.613 for word 1-2-gram TF-IDF
over `Entity.text()` and `Mention.text` (bench/retrieval_em.py); level on Walmart->Amazon (char 0.887, word 0.894).

Which texts (measured on the three entity-matching sets; see `mention_query_text` and
`entity_doc_text`, shared with the retriever's char n-gram channel in `retrieval.chargram`): the
mention's product name as written (`surface`) and its `text`, against the entity's name and
attribute values (prices left out). The project issue's variant (surface alone
against name + all values, fitted on all mentions) gives its reported 0.843 on Abt->Buy's held-out
20% (`workflows.split_mentions`); this one 0.885 (0.839 when the fit sees the held-out mentions
only and not also the train and dev ones: pass those as `fit_mentions`).

Ray-free: numpy and sklearn only (sklearn imported inside the functions, so importing this module
stays cheap). The similarity is worked out chunk by chunk of mentions with sparse matrix products,
so a KB of tens of thousands of entities never meets a dense mentions x entities matrix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ameli_ray.retrieval.chargram import entity_doc_text, mention_query_text
from ameli_ray.schema import NIL_ENTITY, Entity, Mention

__all__ = ["char_tfidf_metrics", "char_tfidf_rank", "entity_doc_text", "mention_query_text", "rank_texts"]

DEFAULT_KS = (1, 10, 100)
CHUNK_SIZE = 256


def rank_texts(
    entity_texts: Sequence[str],
    mention_texts: Sequence[str],
    entity_ids: Sequence[str],
    k: int = 100,
    *,
    chunk_size: int = CHUNK_SIZE,
    fit_texts: Sequence[str] = (),
) -> list[list[str]]:
    """Each mention text's top-k entity ids by cosine similarity of char n-gram TF-IDF vectors.

    The vectorizer is fitted on the entity texts, the mention texts and `fit_texts` (further
    mention texts that only shape the IDF weights) together. Ties go to the entity that comes
    first, so the ranking depends neither on `k` nor on `chunk_size` (mentions per sparse product).
    `k` larger than the KB gives every entity.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(entity_texts) != len(entity_ids):
        raise ValueError(f"{len(entity_texts)} entity texts but {len(entity_ids)} entity ids")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    n_entities, n_mentions = len(entity_texts), len(mention_texts)
    if n_mentions == 0:
        return []
    if n_entities == 0:
        return [[] for _ in mention_texts]
    ids = np.asarray(entity_ids, dtype=object)
    k = min(k, n_entities)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    try:
        # rows come L2-normalised: a dot product is the cosine
        matrix = vectorizer.fit_transform([*entity_texts, *mention_texts, *fit_texts]).tocsr()
    except ValueError:  # empty vocabulary: every text is blank, nothing to rank by
        return [list(ids[:k]) for _ in mention_texts]
    entities_t = matrix[:n_entities].T.tocsr()
    mentions = matrix[n_entities : n_entities + n_mentions]
    ranked: list[list[str]] = []
    for start in range(0, n_mentions, chunk_size):
        sims = (mentions[start : start + chunk_size] @ entities_t).toarray()  # chunk x entities, dense
        if k == n_entities:
            for row in sims:
                ranked.append(list(ids[np.argsort(-row, kind="stable")]))
            continue
        # the k-th largest score of each row; the entities above it are in, and of those at it the
        # first ones in KB order (argpartition alone would pick among equal scores at random)
        kth = np.take_along_axis(sims, np.argpartition(-sims, k - 1, axis=1)[:, k - 1 : k], axis=1)[:, 0]
        for row, threshold in zip(sims, kth):
            above = np.flatnonzero(row > threshold)
            top = np.concatenate([above, np.flatnonzero(row == threshold)[: k - above.size]])
            # equal scores lie within one of the two ascending parts: a stable sort keeps KB order
            ranked.append(list(ids[top[np.argsort(-row[top], kind="stable")]]))
    return ranked


def char_tfidf_rank(
    entities: list[Entity],
    mentions: list[Mention],
    k: int = 100,
    *,
    chunk_size: int = CHUNK_SIZE,
    fit_mentions: Sequence[Mention] = (),
) -> list[list[str]]:
    """Each mention's top-k entity ids by cosine similarity of char n-gram TF-IDF vectors.

    `fit_mentions`: further mentions whose texts join the fit (never ranked, their gold never read),
    e.g. the train and dev splits when `mentions` is the held-out one.
    """
    return rank_texts(
        [entity_doc_text(e) for e in entities],
        [mention_query_text(m) for m in mentions],
        [e.id for e in entities],
        k,
        chunk_size=chunk_size,
        fit_texts=[mention_query_text(m) for m in fit_mentions],
    )


def char_tfidf_metrics(
    entities: list[Entity],
    mentions: list[Mention],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    chunk_size: int = CHUNK_SIZE,
    fit_mentions: Sequence[Mention] = (),
) -> dict:
    """{"accuracy": top-1, "recall@K": gold among the first K, "n_mentions", "seconds"} over the
    mentions with a real gold entity, as `linking_metrics` counts them.

    Unlabelled mentions (gold None) and NIL mentions (gold `NIL_ENTITY`: the baseline never answers
    "no match") are skipped; their counts are `n_unlabelled` and `n_nil_mentions`. All mentions go
    into the TF-IDF fit, with `fit_mentions` (see `char_tfidf_rank`). `seconds` is the wall time of fit and ranking.
    """
    ks = tuple(ks)
    start = time.perf_counter()
    ranked = char_tfidf_rank(entities, mentions, k=max((1, *ks)), chunk_size=chunk_size, fit_mentions=fit_mentions)
    n = top1 = 0
    hits = dict.fromkeys(ks, 0)
    n_nil = n_unlabelled = 0
    for mention, ids in zip(mentions, ranked):
        gold = mention.gold_entity_id
        if gold is None:
            n_unlabelled += 1
            continue
        if gold == NIL_ENTITY:
            n_nil += 1
            continue
        n += 1
        rank = ids.index(gold) if gold in ids else None
        top1 += rank == 0
        for k in ks:
            hits[k] += rank is not None and rank < k
    seconds = time.perf_counter() - start
    out: dict = {"accuracy": top1 / n if n else 0.0}
    out.update({f"recall@{k}": hits[k] / n if n else 0.0 for k in ks})
    out.update(n_mentions=n, n_nil_mentions=n_nil, n_unlabelled=n_unlabelled, seconds=seconds)
    return out
