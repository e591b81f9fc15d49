"""The codes channel's two sides: the codes a review writes, and the text of each product they are looked for in."""

import numpy as np
import pyarrow as pa
import pytest

from ameli_ray.retrieval.codes import code_share, product_code_texts, review_codes, squeeze
from ameli_ray.schema import Entity, entities_to_table


@pytest.mark.parametrize(("text", "codes"), [
    ("D-Link DCS-1100 Network Camera. modelno: DCS-1100", {"dcs1100"}),
    ("HP CB40 Toner 7500 Page-Yield | modelno: CB400A", {"cb40", "7500", "cb400a"}),
    ("Asus ENGT430 DC S/DI/1GD3", {"engt430", "sdi1gd3"}),  # separators inside a token joined
    ("price: 249.23. shipweight: 4.85. 2.7 inch LCD", set()),  # decimals: prices, weights, sizes
    ("Nero 7 for 3 PCs, 100 GB", set()),  # fewer than four letters and digits
    ("HDR10+ panel", {"hdr10+"}),  # "+" is part of a code
    ("a lovely punch", set()),
    ("", set()),
])
def test_review_codes(text, codes):
    assert review_codes(text) == codes


def test_squeeze():
    assert squeeze("SH 350 IP") == "sh350ip" and squeeze("NV-AX2-256-BL") == "nvax2256bl" and squeeze("HDR10+") == "hdr10+"


def _table(entities):
    return entities_to_table(entities)


def test_product_text_is_the_name_and_values_without_names_descriptions_or_prices():
    entities = [
        Entity(id="a", name="New-Swingline 74030 - Punch", attributes={"modelno": "SWI-74030", "Price": "21.94",
                                                                       "Product Name": "other 9999", "brand": "Swingline"}),
        Entity(id="b", name="SH 350 IP", description="fits the SH 9999 too"),
        Entity(id="c", name="", attributes={}),
    ]
    texts = product_code_texts(_table(entities))
    assert texts.to_pylist() == ["newswingline74030punch swi74030 swingline", "sh350ip ", " "]
    # a slice of a table (a streamed KB's part) keeps its own rows
    assert product_code_texts(_table(entities).slice(1, 2)).to_pylist() == ["sh350ip ", " "]


def test_code_share_counts_the_codes_found_inside_one_value_never_across_two():
    entities = [
        Entity(id="a", name="Swingline Punch SWI74030", attributes={"color": "black"}),
        Entity(id="b", name="Punch 7403", attributes={"pack": "0 sheets"}),  # "7403" + "0": across two values
        Entity(id="c", name="SH 350 IP Headset"),
    ]
    texts = product_code_texts(_table(entities))
    share = code_share(review_codes("modelno: 74030 headset SH350IP"), texts, np.array([0, 1, 2, 0]))
    assert share.tolist() == [0.5, 0.0, 0.5, 0.5]
    assert code_share({"74030"}, texts, np.zeros(0, np.int64)).shape == (0,)


def test_a_code_also_holds_a_product_value_that_could_be_a_code_itself():
    entities = [
        Entity(id="a", name="Lowepro Apex 100 AW", attributes={"modelno": "34992"}),  # inside "lp34992"
        Entity(id="b", name="Apex", attributes={"modelno": "349"}),  # too short to be a code
        Entity(id="c", name="Apex", attributes={"series": "Apex"}),  # no digit: a word, not a code
        Entity(id="d", name="Antec Power Supply", attributes={"modelno": "EA-650 Green"}),  # the whole value
        Entity(id="e", name="Lowepro 34992 Apex"),  # "34992" inside the name's one value: not a value of its own
    ]
    texts = product_code_texts(_table(entities))
    share = code_share(review_codes("LowePro Apex. modelno: LP34992"), texts, np.arange(5))
    assert share.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert code_share(review_codes("modelno: EA650GREEN"), texts, np.array([3, 0])).tolist() == [1.0, 0.0]
    # each review code counts once, whichever way it is held
    assert code_share(review_codes("LP34992 or 34992"), texts, np.array([0, 4])).tolist() == [1.0, 0.5]


def test_a_kb_without_attributes_still_has_its_names():
    table = pa.table({"name": ["DCS-1100 Camera", None],
                      "attributes": pa.array([None, None], pa.map_(pa.string(), pa.string()))})
    assert product_code_texts(table).to_pylist() == ["dcs1100camera", ""]


def test_the_kb_side_squeezes_byte_for_byte_as_the_review_side():
    # one rule on both sides, or a code would be missed for how it was written, not what it is
    from ameli_ray.retrieval.codes import _squeezed

    rng = np.random.default_rng(0)
    alphabet = list("aZ09+-/. _éÄ€K\u212aİß") + ["\U0001f600"]
    strings = ["".join(rng.choice(alphabet, size=rng.integers(0, 12))) for _ in range(300)] + [""]
    array = pa.array(strings + [None])
    assert _squeezed(array).to_pylist() == [squeeze(s) for s in strings] + [""]
    assert _squeezed(array.slice(5, 20)).to_pylist() == [squeeze(s) for s in strings[5:25]]
