"""Canonical forms of attribute values and text: units, numbers, sizes, identifiers, colours, offsets."""

from __future__ import annotations

import pytest

from ameli_ray.attributes.normalize import (
    base_color,
    compact,
    is_model_key,
    is_model_like,
    normalize_key,
    normalize_text,
    normalize_value,
    surface_variants,
)

SAME = [
    # storage
    ("256 GB", "256gb"), ("256GB", "256gb"), ("256 gigabytes", "256gb"), ("256 gig", "256gb"), ("256 gigs", "256gb"),
    ("1 TB", "1tb"), ("one terabyte", "1tb"), ("2 terabytes", "2tb"), ("500 MB", "500mb"),
    # frequency, power, battery
    ("2.8 GHz", "2.8ghz"), ("165 Hz", "165hz"), ("165 hertz", "165hz"), ("165Hz", "165hz"),
    ("1500 watts", "1500w"), ("1500-Watt", "1500w"), ("1500W", "1500w"),
    ("4500 milliampere hours", "4500mah"), ("4500mAh", "4500mah"), ("4500 mAh", "4500mah"),
    # lengths, weights, volumes
    ('27"', "27in"), ("27''", "27in"), ("27-inch", "27in"), ("27 inches", "27in"), ("27in", "27in"),
    ("50 millimeters", "50mm"), ("50mm", "50mm"), ("15 cm", "15cm"),
    ("9.5 ounces", "9.5oz"), ("9.5 oz", "9.5oz"), ("4.6 pounds", "4.6lb"), ("4.6 lbs", "4.6lb"),
    ("5 cups", "5cup"), ("5-Cup", "5cup"), ("12 cups", "12cup"),
    # rates and other units
    ("22 pages per minute", "22ppm"), ("22 ppm", "22ppm"),
    ("1050 megabytes per second", "1050mb/s"), ("1050MB/s", "1050mb/s"), ("1050 MB/s", "1050mb/s"),
    ("50 megapixels", "50mp"), ("50MP", "50mp"), ("1 millisecond", "1ms"), ("10 hours", "10h"),
    ("178°", "178deg"), ("178 degrees", "178deg"), ("100%", "100%"),
    # numbers
    ("1,000", "1000"), ("12,500.50", "12500.5"), ("15.0", "15"), ("15.50", "15.5"), ("$99.82", "99.82"),
    ("1920x1080", "1920 x 1080"), ("1920 × 1080", "1920 x 1080"), ("1200 x 1200 dpi", "1200 x 1200dpi"),
    ("7.6 x 4.8 x 1.4 inches", "7.6 x 4.8 x 1.4in"), ("1.0 x 1.0 x 1.0 inches", "1 x 1 x 1in"),
    # sizes
    ("Size 10", "size 10"), ("size 10", "size 10"), ("SIZE 10.0", "size 10"),
    ("X-Large", "xl"), ("extra large", "xl"), ("XL", "xl"), ("x large", "xl"), ("XX-Large", "xxl"),
    ("2XL", "xxl"), ("extra extra large", "xxl"), ("X-Small", "xs"), ("Large", "large"),
    # case, whitespace, punctuation, accents, spellings
    ("  Midnight   Blue ", "midnight blue"), ("MIDNIGHT BLUE", "midnight blue"), ("Grey", "gray"),
    ("Café Crème", "cafe creme"), ("Women’s", "women"), ("Inkwell's", "inkwell"), ("don't", "dont"),
    ("Print/Copy/Scan/Fax", "print/copy/scan/fax"), ("AT&T", "at&t"), ("HDR10+", "hdr10+"),
    ("4K (2160p)", "4k 2160p"), ("USB Type-C", "usb type c"), ("NV-AX2-256-BL", "nv ax2 256 bl"),
    ("", ""), ("  ", ""), ("---", ""),
]


@pytest.mark.parametrize(("raw", "expected"), SAME)
def test_normalize_value_table(raw: str, expected: str) -> None:
    assert normalize_value(raw) == expected


def test_unit_spellings_meet() -> None:
    assert len({normalize_value(v) for v in ("256 GB", "256GB", "256 gigabytes", "256 gig", "256-GB")}) == 1
    assert normalize_value("a size 10 in black") == "a size 10 in black"  # a bare "in" is a preposition
    assert normalize_value("the blue one") == "the blue one"  # "one" is a number only before a unit


def test_large_is_not_a_token_of_x_large() -> None:
    assert "large" not in normalize_value("X-Large").split()
    assert normalize_value("I ordered an X-Large") == "i ordered an xl"


def test_compact_and_model_like() -> None:
    assert compact("NV-AX2-256-BL") == compact("nv ax2 256bl") == compact("NVAX2256BL") == "nvax2256bl"
    assert compact("HDR10+") == "hdr10+"  # "+" is kept: HDR10+ is not HDR10
    assert is_model_like("Model Number", "Koss EQ 50")  # the key says so
    assert is_model_like("Whatever", "AU515RX1A")  # one word with letters and digits
    assert not is_model_like("Color", "Midnight Blue")
    assert is_model_key("modelno") and is_model_key("MPN") and is_model_key("SKU") and not is_model_key("Color")


def test_surface_variants() -> None:
    assert surface_variants("Storage Capacity", "256 GB") == ["256gb"]
    assert surface_variants("Model Number", "NV-AX2-256-BL") == ["nv ax2 256 bl", "nvax2256bl"]
    assert surface_variants("modelno", "DCS1100") == ["dcs1100"]
    assert surface_variants("Color", "Midnight Blue") == ["midnight blue"]
    assert surface_variants("Shoe Size", "US 7.5") == ["us 7.5", "size 7.5"]
    assert surface_variants("Clothing Size", "Large") == ["large", "size l"]
    assert surface_variants("Clothing Size", "X-Large") == ["xl", "size xl"]
    assert surface_variants("Color", "") == []


@pytest.mark.parametrize(
    ("colour", "family"),
    [
        ("Midnight Blue", "blue"), ("Royal Blue", "blue"), ("Navy", "blue"), ("Rose Gold", "pink"),
        ("Champagne Gold", "gold"), ("Graphite", "gray"), ("Heather Grey", "gray"), ("Onyx Black", "black"),
        ("Black", "black"), ("Stainless Steel", "silver"), ("Coral Red", "red"), ("Maroon", "red"),
        ("Forest Green", "green"), ("Olive", "green"), ("Lavender", "purple"), ("Teal", "teal"),
        ("Cream", "beige"), ("Sunburst Yellow", "yellow"), ("Sunset Orange", "orange"), ("Arctic White", "white"),
        ("Black/Red", "black"), ("Deep Sea Blue", "blue"), ("Space Gray", "gray"),
    ],
)
def test_base_color(colour: str, family: str) -> None:
    assert base_color(colour) == family


def test_base_color_unknown() -> None:
    assert base_color("Unobtainium") is None
    assert base_color("") is None


def test_normalize_key() -> None:
    assert normalize_key("  Color ") == normalize_key("color") == "color"
    assert normalize_key("Storage  Capacity") == "storage capacity"


@pytest.mark.parametrize(
    "text",
    [
        'Got the Café  crème 256 GB, and a 27" screen!',
        "Ligature ﬁne, NBSP\u00a0256\u00a0GB, e\u0301 combining, 😀 emoji, 27″ prime",
        "Women’s XL in “Midnight Blue” — 1,000 units",
    ],
)
def test_offsets_point_at_the_original_text(text: str) -> None:
    nt = normalize_text(text)
    assert len(nt.tokens) == len(nt.starts) == len(nt.ends)
    for token, start, end in zip(nt.tokens, nt.starts, nt.ends):
        assert 0 <= start < end <= len(text)
        # each token's span normalises back to the token itself
        assert normalize_value(text[start:end]) == token, (token, text[start:end])


def test_offsets_of_merged_tokens() -> None:
    text = "The 256 GB model with a 27-inch screen"
    nt = normalize_text(text)
    spans = {t: text[s:e] for t, s, e in zip(nt.tokens, nt.starts, nt.ends)}
    assert spans["256gb"] == "256 GB"
    assert spans["27in"] == "27-inch"


@pytest.mark.parametrize(
    "text",
    ["\ud800 lone surrogate 256GB", "e\u0301\u0301\u0301", "😀😀😀", "\u200b\u200d", "\x00\x01 control",
     "ｆｕｌｌｗｉｄｔｈ ２５６ＧＢ",
     "שלום 256GB", "日本語 256GB", "\ufeffbom"],
)
def test_odd_unicode_does_not_crash(text: str) -> None:
    nt = normalize_text(text)
    for start, end in zip(nt.starts, nt.ends):
        assert 0 <= start <= end <= len(text)
    assert isinstance(normalize_value(text), str)


def test_fullwidth_folds() -> None:
    assert normalize_value("ｆｕｌｌｗｉｄｔｈ ２５６ＧＢ") == "fullwidth 256gb"
