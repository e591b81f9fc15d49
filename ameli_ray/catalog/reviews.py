"""Reviews: the scenario of each review (what its text states and its photos show), its text,
and its gold attributes."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ameli_ray.catalog.photos import _take_photos
from ameli_ray.catalog.planning import _Product
from ameli_ray.catalog.render import _Rendered
from ameli_ray.catalog.tables import COLORS, is_informative_value

_OPENERS = (
    "I bought {m} {when}.", "Been using {m} for {dur} now.", "{M} arrived quickly and well packed.",
    "Picked up {m} {when}.", "So far {m} has been {verdict}.", "Ordered {m} online {when}.",
)
_WHEN = ("last month", "a few weeks ago", "as a gift", "to replace my old one", "on sale", "for my son",
         "during a holiday sale", "for my home office")
_DURATIONS = ("two weeks", "about a month", "three months", "half a year", "a couple of weeks")
_VERDICTS = {True: ("great", "excellent", "a good buy", "better than expected"),
             False: ("disappointing", "just okay", "a letdown", "frustrating")}
# Family words (brand, series) by sentiment: 1 = rating 4-5, 0 = rating 3, -1 = rating 1-2.
_FAMILY_SENTENCES: dict[tuple[str, int], tuple[str, ...]] = {
    ("both", 1): ("It's my second {b} product and the {s} line keeps getting better.",
                  "{b} really nailed it with the {s}.", "I compared a few options and the {b} {s} won.",
                  "Coming from an older {b}, the {s} is a big upgrade."),
    ("both", 0): ("I picked the {b} {s} after comparing a few options.", "The {b} {s} is fine, nothing special."),
    ("both", -1): ("I expected more from the {b} {s}.", "I usually like {b}, but the {s} let me down."),
    ("brand", 1): ("{b} makes solid stuff.", "I have always trusted {b}.", "Another good product from {b}."),
    ("brand", 0): ("It's my first {b} product.", "{b} is a brand I had not tried before."),
    ("brand", -1): ("I usually like {b}, but not this time.", "Not {b}'s best work."),
    ("series", 1): ("The {s} looks just like the pictures.", "I had read good things about the {s}.",
                    "The {s} is popular for a reason."),
    ("series", 0): ("The {s} does what it says.", "The {s} looks like the pictures."),
    ("series", -1): ("The {s} got good reviews, but I don't see why.", "I had high hopes for the {s}."),
}
_GENERIC_POS = ("Shipping was quick.", "Would buy again.", "Customer service answered my question fast.",
                "Good value for the money.", "Exactly what I was looking for.", "My wife likes it too.")
_GENERIC_MILD = ("The packaging was a bit battered.", "Instructions were unclear.")
_GENERIC_NEG = ("The packaging was damaged.", "I expected better for the price.", "Support never replied to my email.",
                "I might return it.")
_CLOSERS_POS = ("Highly recommend.", "Five stars from me.", "No regrets.", "Totally worth it.")
_CLOSERS_NEG = ("Can't recommend it.", "Look elsewhere.", "Two thumbs down.", "Not worth it.")
_HEADERS_POS = ("Love it", "Great {n}", "Excellent {n}", "Best {n} I've owned", "Great value", "Very happy",
                "Exactly as described", "Sturdy {n}")
_HEADERS_MID = ("Decent {n}", "Good but not great", "It's okay", "Mixed feelings", "Fine for the price")
_HEADERS_NEG = ("Disappointed", "Returned it", "Not worth it", "Poor quality", "Stopped working")
_FIRST_NAMES = ("Maria", "James", "Aisha", "Chen", "Olivia", "Mateo", "Priya", "Noah", "Sofia", "Liam", "Grace",
                "Omar", "Hannah", "Diego", "Yuki", "Ethan", "Zoe", "Ravi", "Emma", "Lucas")
_USER_SUFFIXES = ("", "", "T", "K", "_reviews", "88", "2024", "J", "Fan", "Tech")


def _storage_words(value: str) -> list[str]:
    number, unit = value[:-2], value[-2:]
    if unit == "TB":
        words = [f"{number} TB", f"{number} terabyte" + ("s" if number != "1" else "")]
        return words + (["one terabyte", "a full terabyte"] if number == "1" else [])
    words = [f"{number} GB", f"{number} gigs", f"{number} gigabytes"]
    return words + {"256": ["a quarter terabyte"], "512": ["half a terabyte"]}.get(number, [])


# Indirect forms for values that have no pattern-based paraphrase (each names exactly one value).
_INDIRECT_PLAIN = {
    "Active Noise Cancelling": ("I got the version with ANC and it blocks out the train.",
                                "The noise cancelling version was worth the extra money."),
    "Passive Isolation": ("I went with the version without ANC.",),
    "Print Only": ("It only prints, no scanner, which is all I need.",),
    "Print/Copy/Scan": ("It prints, copies and scans, but there is no fax.",),
    "Print/Copy/Scan/Fax": ("It prints, copies, scans and even faxes, which my office still needs.",),
}


def _axis_sentence(kind: str, value: str, direct: bool, product: _Product, rng: np.random.Generator) -> str:
    """One sentence stating `value` of a varying axis, literally or in other words."""
    pick = _picker(rng)
    number = value.split()[0]
    if kind == "color":
        aliases = COLORS[value].aliases
        word = value.lower() if direct or not aliases else pick(aliases)
        return pick((f"I went with the {word} one.", f"The {word} looks even better in person.",
                     f"Got it in {word}.", f"Love the {word} color."))
    if kind == "storage":
        amount = value if direct else pick(_storage_words(value))
        return pick((f"I got the {amount} model and have plenty of space.",
                     f"With {amount} of storage I never worry about space.", f"Went for the {amount} version."))
    if kind == "ram":
        amount = value if direct else pick((f"{value[:-2]} gigs", f"{value[:-2]} gigabytes"))
        return pick((f"The {amount} of RAM handles all my browser tabs.",
                     f"Configured with {amount} of memory, it never slows down."))
    if kind == "inches":
        if direct:
            return pick((f"The screen is {value} diagonally, which is just right for me.",
                         f"I chose the {value} size."))
        return pick((f"The {number}-inch screen is just right for me.", f'I chose the {number}" size.',
                     f"Went with the {number} inch model."))
    if kind == "hertz":
        if direct:
            return f"The {value} refresh rate makes games smooth."
        return pick((f"The {number}Hz refresh rate makes games smooth.", f"Running at {number} Hz is buttery smooth."))
    if kind == "shoe":
        size = value.split()[1]
        if direct:
            return pick((f"I ordered a {value} and it fits true to size.", f"My usual {value} fits perfectly."))
        gender = product.attrs.get("Gender", "").lower()
        return pick((f"I ordered a size {size} and it fits true to size.", f"My usual {gender} {size} fits perfectly."))
    if kind == "clothing":
        short = {"Small": "S", "Medium": "M", "Large": "L", "X-Large": "XL", "XX-Large": "XXL"}[value]
        if direct:
            return pick((f"I ordered a {value.lower()} and it fits well.", f"The {value} fits as expected."))
        extra = {"X-Large": ["an extra large"], "XX-Large": ["a 2XL"]}.get(value, [])
        word = pick([f"a size {short}", *extra] + ([f"an {short}"] if len(short) > 1 else []))
        return f"I ordered {word} and it fits well."
    if kind == "watts":
        if direct:
            return f"At {value} it heats up fast."
        return pick((f"The {number}W heater brews quickly.", f"The {number}-watt element heats up fast."))
    if kind == "cups":
        if direct:
            return f"It makes {value} at a time, perfect for us."
        options = [f"The {number}-cup carafe is perfect for us."]
        if number == "12":
            options.append("It brews a dozen cups at a time.")
        return pick(options)
    if not direct and value in _INDIRECT_PLAIN:
        return pick(_INDIRECT_PLAIN[value])
    return pick((f"I got the {value} version.", f"Mine is the {value} model.", f"Went with the {value} one."))


@lru_cache(maxsize=4096)
def _literal(value: str) -> re.Pattern[str]:
    """`value` as written in lower-cased text, with boundaries that keep "Large" out of "X-Large"
    and "US 10" out of "US 10.5"."""
    return re.compile(r"(?<![\w\-/.])" + re.escape(value.lower()) + r"(?![\w/]|[-.]\w)")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
class _Review:
    review_id: int
    product: _Product
    header: str
    body: str
    mention: str
    image_names: list[str]
    gold: dict[str, str]
    sources: dict[str, str]
    user: str
    rating: int
    recommendation: bool
    feedback: dict[str, int]
    text_values: dict[str, str]  # what the text states (also where a photo shows it too)
    photo_values: dict[str, str]  # what the photos show (also where the text says it too)
    scenario: str

    def to_json(self, nil: bool = False) -> dict[str, Any]:
        p = self.product
        gold = {"id": None, "nil": True} if nil else {"id": p.entity_id}
        return {
            "review_id": self.review_id,
            "header": self.header,
            "body": self.body,
            "mention": self.mention,
            "review_image_path": self.image_names,
            "gold_entity_info": {**gold, "product_name": p.name, "product_category": p.category.name},
            "user": self.user,
            "rating": self.rating,
            "recommendation": self.recommendation,
            "feedback": self.feedback,
            "gold_attributes": self.gold,
            "gold_attribute_sources": self.sources,
        }


_SCENARIOS = ("text_all", "split", "photo_only", "partial", "none")
_SCENARIO_P = np.array([0.33, 0.22, 0.23, 0.10, 0.12])


def _plan_scenario(deciding: tuple[str, ...], photographable: set[str], rng: np.random.Generator
                   ) -> tuple[str, list[str], set[str], set[str]]:
    """(scenario, keys the text states, keys a photo must show, keys no photo may show)."""
    scenario = str(rng.choice(_SCENARIOS, p=_SCENARIO_P))
    keys = list(deciding)
    rng.shuffle(keys)  # type: ignore[arg-type]
    shown = [k for k in keys if k in photographable]
    if len(keys) == 1:  # one deciding axis: "split" and "partial" collapse onto the others
        scenario = {"split": "photo_only" if rng.random() < 0.5 else "text_all", "partial": "text_all"}.get(
            scenario, scenario)
    if scenario in ("photo_only", "split") and not shown:
        scenario = "text_all" if rng.random() < 0.6 else "none"
    if scenario == "text_all":
        return scenario, keys, set(), set()
    if scenario == "split":
        want = shown[0]
        return scenario, [k for k in keys if k != want], {want}, set()
    if scenario == "photo_only":
        return scenario, [], set(shown), set(keys) - set(shown)
    if scenario == "partial":
        return scenario, keys[:1], set(), set(keys[1:])
    return scenario, [], set(), set(keys)


def _make_review(review_id: int, product: _Product, views: list[_Rendered], rng: np.random.Generator,
                 folder: Path) -> _Review:
    family = product.family
    printed = {k for v in views for ln in v.lines for k in ln.keys}
    photographable = {k for k in family.varying if k == "Color" or k in printed}
    scenario, text_keys, want, avoid = _plan_scenario(family.varying, photographable, rng)
    image_names, ocr_keys, image_keys = _take_photos(review_id, views, want, avoid,
                                                     {*family.varying, "Model Number"}, rng, folder)
    rating = int(rng.choice([1, 2, 3, 4, 5], p=[0.06, 0.06, 0.12, 0.3, 0.46]))
    header, body, mention = _write_review_text(product, text_keys, scenario, rating, rng)

    # Gold: the planned statements, plus every Spec value that appears literally anywhere in the
    # text (brand and series in the family sentence, a value quoted by a "says" sentence, ...).
    text = f"{header}. {body}".lower()
    text_values = {k: product.attrs[k] for k in text_keys}
    for key, value in product.attrs.items():
        if key not in text_values and is_informative_value(value) and _literal(value).search(text):
            text_values[key] = value
    photo_values = {k: product.attrs[k] for k in sorted(ocr_keys | image_keys)
                    if is_informative_value(product.attrs[k])}
    gold: dict[str, str] = {}
    sources: dict[str, str] = {}
    for key in product.attrs:
        if key in text_values:
            gold[key], sources[key] = text_values[key], "text"
        elif key in photo_values:
            gold[key], sources[key] = photo_values[key], "ocr" if key in ocr_keys else "image"

    pick = _picker(rng)
    user = pick(_FIRST_NAMES) + pick(_USER_SUFFIXES)
    recommendation = (rating >= 4) != (rng.random() < 0.05)  # a few reviewers contradict their stars
    feedback = {"helpful": int(rng.poisson(2.0)), "unhelpful": int(rng.poisson(0.5))}
    return _Review(review_id, product, header, body, mention, image_names, gold, sources, user, rating,
                   recommendation, feedback, text_values, photo_values, scenario)


def _picker(rng: np.random.Generator) -> Callable[[Sequence[str]], str]:
    return lambda options: str(options[int(rng.integers(len(options)))])


def _write_review_text(product: _Product, text_keys: list[str], scenario: str, rating: int,
                       rng: np.random.Generator) -> tuple[str, str, str]:
    """(header, body, mention): family words, the planned attribute statements, chatter."""
    family, category = product.family, product.category
    axes = {a.key: a for a in category.axes}
    pick = _picker(rng)
    noun = pick(category.nouns)
    words = str(rng.choice(["both", "series", "brand", "none"], p=[0.45, 0.3, 0.15, 0.1]))
    b, s = family.brand, family.series
    this = ("these " if category.plural else "this ") + noun
    mention = {"both": pick([f"{b} {s}", f"the {s}", this]), "series": pick([s, this]),
               "brand": pick([this, f"this {b}"]), "none": this}[words]
    opener = pick(_OPENERS).format(m=mention, M=_cap(mention), when=pick(_WHEN), dur=pick(_DURATIONS),
                                   verdict=pick(_VERDICTS[rating >= 3]))
    middle: list[str] = []
    if words != "none" and mention != f"{b} {s}":
        mood = 1 if rating >= 4 else 0 if rating == 3 else -1
        middle.append(pick(_FAMILY_SENTENCES[(words, mood)]).format(b=b, s=s))
    for key in text_keys:
        middle.append(_axis_sentence(axes[key].kind, product.attrs[key], rng.random() < 0.55, product, rng))
    says = [k for k in category.says if is_informative_value(product.attrs.get(k, ""))]
    for key in [says[int(i)] for i in rng.permutation(len(says))[: int(rng.choice(3, p=[0.5, 0.35, 0.15]))]]:
        value = product.attrs[key]
        middle.append(pick(category.says[key]).replace("{v}", value).replace("{v|lower}", value.lower()))
    if scenario == "text_all" and rng.random() < 0.05:  # a reviewer who quotes the model number
        middle.append(f"Model {product.attrs['Model Number']} for anyone searching.")
    # A few reviewers name a sibling they did NOT buy: a trap for plain string matching.
    siblings = [m for m in family.members if m is not product]
    compare_keys = [k for k in family.varying if axes[k].kind in ("color", "storage", "inches", "shoe")]
    if siblings and compare_keys and rng.random() < 0.05:
        key = compare_keys[0]
        other = siblings[int(rng.integers(len(siblings)))].attrs[key]
        if other != product.attrs[key]:
            said = f"{other.split()[0]}-inch" if axes[key].kind == "inches" else other
            middle.append(f"I almost bought the {said} one instead.")
    pros = list(category.pros) + list(_GENERIC_POS)
    cons = list(category.cons) + list(_GENERIC_MILD) + (list(_GENERIC_NEG) if rating <= 2 else [])
    n_pos, n_neg = {5: (2, 0), 4: (2, 1), 3: (1, 1), 2: (0, 2), 1: (0, 2)}[rating]
    middle += [pros[int(i)] for i in rng.permutation(len(pros))[:n_pos]]
    middle += [cons[int(i)] for i in rng.permutation(len(cons))[:n_neg]]
    sentences = [opener] + [middle[int(i)] for i in rng.permutation(len(middle))]
    if rng.random() < 0.5:
        sentences.append(pick(_CLOSERS_POS if rating >= 4 else _CLOSERS_NEG if rating <= 2 else ("Fair enough.",)))
    body = " ".join(_cap(x) for x in sentences)
    header = pick(_HEADERS_POS if rating >= 4 else _HEADERS_MID if rating == 3 else _HEADERS_NEG).format(n=noun)
    if words in ("both", "series") and rng.random() < 0.25:
        header = f"{s}: {header[0].lower()}{header[1:]}"
    return header, body, mention
