"""Which attribute keys the extractor reads reliably on a catalogue, measured on dev.

Extraction is good for some keys and poor for others on the same catalogue: on Walmart->Amazon
the brand read from a review agrees with the right product in 96% of the dev reviews that state
one and the model number in 99%, but the dimensions in about 55% (a review's "12 inches" is a
screen, a box or a cable). A key read that badly contradicts the right product as often as it
confirms it: the attribute filter passes over the right answer and the agreement channel ranks
it down. Fusion's weights and the filter are per catalogue, so they cannot drop one key and keep
the others; this rule does, per key, on dev.

For each labelled dev review and each key read from it, the values of that key are compared with
the gold product by the linker's own relation (`agreement_scores`): they agree, contradict, or
the product lacks the key (then they say nothing and do not count). A key is *unreliable* when
it was compared at least `min_reads` times and agreed in less than `min_precision` of them; the
linker then ignores what it reads for that key (`attributes.ignore_keys`, and the trained model's
own list). numpy only; Ray-free.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ameli_ray.attributes.extract import ExtractedAttribute, agreement_scores
from ameli_ray.attributes.vocabulary import AttributeVocabulary


@dataclass(frozen=True)
class KeyReliability:
    key: str
    agree: int  # dev reviews whose values for the key agree with the gold product
    contradict: int  # ... contradict it (nothing read for the key agrees)

    @property
    def reads(self) -> int:
        return self.agree + self.contradict

    @property
    def precision(self) -> float:
        return self.agree / self.reads if self.reads else 1.0


def key_reliability(reviews: Iterable[tuple[Sequence[ExtractedAttribute], int]], vocab: AttributeVocabulary
                    ) -> dict[str, KeyReliability]:
    """Per key, how often what was read agrees with the gold product: `reviews` yields (the
    values read from one review, the gold product's row in the KB)."""
    agree: dict[str, int] = defaultdict(int)
    contradict: dict[str, int] = defaultdict(int)
    for attributes, gold_row in reviews:
        by_key: dict[str, list[ExtractedAttribute]] = defaultdict(list)
        for a in attributes:
            by_key[a.key].append(a)
        for key, values in by_key.items():
            score, contradicted = agreement_scores(values, [gold_row], vocab)
            if score[0] > 0:
                agree[key] += 1
            elif contradicted[0]:
                contradict[key] += 1
    return {k: KeyReliability(k, agree[k], contradict[k]) for k in sorted(set(agree) | set(contradict))}


def unreliable_keys(reliability: dict[str, KeyReliability], min_precision: float, min_reads: int) -> list[str]:
    """The keys read often enough on dev to judge, and right too rarely to use."""
    return sorted(k for k, r in reliability.items() if r.reads >= min_reads and r.precision < min_precision)
