"""The one canonical form of attribute values and review text, used wherever they are compared.

`normalize_value("256 Gigabytes") == normalize_value("256GB") == "256gb"`. Text and values go
through the same tokenizer, so a value is found in a review exactly when its normalised form is a
run of whole tokens of the review's normalised form. `normalize_text` also keeps, per token, the
character span it came from in the original text, so matches point back at what the reviewer wrote.

The canonical form is a sequence of tokens joined by single spaces:
- case-folded, accents stripped (NFKD), typographic quotes/dashes/`×` unified;
- hyphens, underscores and punctuation separate tokens ("NV-AX2-256-BL" -> "nv ax2 256 bl");
  `/`, `&` and `'` between word characters join ("print/copy/scan", "at&t", "don't" -> "dont"; a
  possessive "'s" is dropped: "Inkwell's" -> "inkwell"),
  because "Print/Copy/Scan" must not be found inside "Print/Copy/Scan/Fax";
- numbers: thousands separators dropped, trailing decimal zeros dropped ("1,000" -> "1000", "15.0" -> "15");
- a number followed by a unit becomes one token with the canonical unit ("256 gigs" -> "256gb",
  "27-inch" / `27"` -> "27in", "165 hertz" -> "165hz", "22 pages per minute" -> "22ppm");
  number words one..twelve count as numbers only before a unit ("one terabyte" -> "1tb");
- "1920x1080" is split like "1920 x 1080"; "X-Large" / "extra large" / "XL" -> "xl" (so that
  "Large" is never found inside "X-Large"); "grey" -> "gray".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "COLOR_FAMILIES",
    "COLOR_WORDS",
    "FAMILY_WORDS",
    "NormalizedText",
    "base_color",
    "compact",
    "is_color_key",
    "is_model_key",
    "is_model_like",
    "normalize_key",
    "normalize_text",
    "normalize_value",
    "surface_variants",
    "value_variants",
]

# -- character folding ---------------------------------------------------------------------------
# Characters NFKD leaves alone but that writers use interchangeably with ASCII.
_CHAR_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00d7": "x", "\u00ba": "°", "\u02da": "°",
}


@lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
    mapped = _CHAR_MAP.get(ch)
    if mapped is not None:
        return mapped
    decomposed = unicodedata.normalize("NFKD", ch.casefold())
    out = "".join(c for c in decomposed if not unicodedata.combining(c))
    # NFKD may produce characters that the map unifies (e.g. a compatibility quote)
    return "".join(_CHAR_MAP.get(c, c) for c in out)


def _fold(text: str) -> tuple[str, list[int] | None]:
    """Folded text and, when its length differs from the input's, the original index of each char."""
    if text.isascii():
        folded = text.lower()
        return folded.replace("`", "'"), None
    parts: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        f = ch if ch.isascii() and not ch.isupper() and ch != "`" else _fold_char(ch)
        parts.append(f)
        index.extend([i] * len(f))
    return "".join(parts), index


# -- units ---------------------------------------------------------------------------------------
def _unit_table() -> dict[tuple[str, ...], str]:
    spellings: dict[str, tuple[str, ...]] = {
        "gb": ("gb", "gig", "gigs", "gigabyte", "gigabytes", "gbyte", "gbytes"),
        "tb": ("tb", "terabyte", "terabytes", "tbyte", "tbytes"),
        "mb": ("mb", "megabyte", "megabytes", "mbyte", "mbytes"),
        "kb": ("kb", "kilobyte", "kilobytes"),
        "ghz": ("ghz", "gigahertz"),
        "mhz": ("mhz", "megahertz"),
        "khz": ("khz", "kilohertz"),
        "hz": ("hz", "hertz"),
        "mah": ("mah", "milliampere hour", "milliampere hours", "milliamp hour", "milliamp hours"),
        "wh": ("wh", "watt hour", "watt hours"),
        "kw": ("kw", "kilowatt", "kilowatts"),
        "w": ("w", "watt", "watts"),
        "v": ("v", "volt", "volts"),
        "a": ("amp", "amps", "ampere", "amperes"),  # never a bare "a": "2 a day"
        "in": ("in", "inch", "inches", '"', "''"),  # bare "in" only glued: "size 10 in black"
        "ft": ("ft", "foot", "feet"),
        "mm": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
        "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
        "km": ("km", "kilometer", "kilometers", "kilometre", "kilometres"),
        "m": ("m", "meter", "meters", "metre", "metres"),
        "floz": ("floz", "fl oz", "fluid ounce", "fluid ounces"),
        "oz": ("oz", "ounce", "ounces"),
        "lb": ("lb", "lbs", "pound", "pounds"),
        "kg": ("kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"),
        "g": ("g", "gram", "grams"),
        "mp": ("mp", "megapixel", "megapixels"),
        "ms": ("ms", "millisecond", "milliseconds"),
        "h": ("h", "hr", "hrs", "hour", "hours"),
        "min": ("min", "mins", "minute", "minutes"),
        "s": ("sec", "secs", "second", "seconds"),
        "yr": ("yr", "yrs", "year", "years"),
        "mo": ("month", "months"),
        "day": ("day", "days"),
        "deg": ("deg", "degree", "degrees", "°"),
        "cup": ("cup", "cups"),
        "ppm": ("ppm", "pages per minute", "page per minute", "pages/min", "pages/minute"),
        "page": ("page", "pages"),
        "sheet": ("sheet", "sheets"),
        "dpi": ("dpi",),
        "mb/s": ("mb/s", "mb per second", "megabyte per second", "megabytes per second"),
        "gb/s": ("gb/s", "gb per second", "gigabyte per second", "gigabytes per second"),
        "mbps": ("mbps", "megabit per second", "megabits per second"),
        "gbps": ("gbps", "gigabit per second", "gigabits per second"),
        "db": ("db", "decibel", "decibels"),
        "nit": ("nit", "nits"),
        "rpm": ("rpm",),
        "ml": ("ml", "milliliter", "milliliters", "millilitre", "millilitres"),
        "l": ("l", "liter", "liters", "litre", "litres"),
        "qt": ("qt", "quart", "quarts"),
        "gal": ("gal", "gallon", "gallons"),
        "pk": ("pk", "pack", "packs"),
        "ct": ("ct", "count"),
        "%": ("%", "percent"),
        "btu": ("btu",),
    }
    table: dict[tuple[str, ...], str] = {}
    for canonical, forms in spellings.items():
        for form in forms:
            table[tuple(form.split())] = canonical
    return table


_UNITS = _unit_table()
# Single-token units that may be glued to the number ("256gb", "27in", "165hz", "1050mb/s").
_GLUED_UNITS = {k[0]: v for k, v in _UNITS.items() if len(k) == 1 and k[0] not in ('"', "''", "°", "%")}
del _UNITS[("in",)]  # "27 in" is rare; "a size 10 in black" is not
_MAX_UNIT_TOKENS = max(len(k) for k in _UNITS)
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}
_SPELLING = {"grey": "gray", "colour": "color", "xlarge": "xl", "xxlarge": "xxl", "xxxlarge": "xxxl",
             "xsmall": "xs", "xxsmall": "xxs", "2xl": "xxl", "3xl": "xxxl", "2xs": "xxs"}
# "x large", "extra large", "xx large", "2x large", "extra extra large", ... -> one size token
_SIZE_PREFIX = {("x",): "x", ("extra",): "x", ("xx",): "xx", ("2x",): "xx", ("extra", "extra"): "xx",
                ("xxx",): "xxx", ("3x",): "xxx"}
_SIZE_WORD = {"large": "l", "small": "s"}

# Raw tokens: "1,000" (thousands), words with internal joiners, or the inch/degree/percent marks.
_RAW = re.compile(
    r"""\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])
      | [^\W_]+(?:(?:(?<=\d)\.(?=\d)|[/&'](?=[^\W_]))[^\W_]+)*\+*
      | ''|"|°|%""",
    re.X,
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_GLUED = re.compile(r"(\d+(?:\.\d+)?)([a-z]+(?:/[a-z]+)?)")
_DIMS = re.compile(r"\d+(?:\.\d+)?(?:x\d+(?:\.\d+)?)+[a-z]*")
_MARKS = frozenset({'"', "''", "°", "%"})


def canonical_number(number: str) -> str:
    """A number as the normaliser writes it: "4.0" is "4", "2.50" is "2.5"."""
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


@dataclass(frozen=True)
class NormalizedText:
    """Normalised tokens of a text and, per token, its [start, end) span in the original text."""

    tokens: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


def _raw_tokens(folded: str) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for m in _RAW.finditer(folded):
        tok, start, end = m.group(), m.start(), m.end()
        if _DIMS.fullmatch(tok):  # "1920x1080" reads like "1920 x 1080"
            pos = start
            for i, piece in enumerate(tok.split("x")):
                if i:
                    out.append(("x", pos, pos + 1))
                    pos += 1
                if piece:
                    out.append((piece, pos, pos + len(piece)))
                pos += len(piece)
            continue
        if "'" in tok and tok != "''":
            if tok.endswith("'s"):  # possessive: "Inkwell's" is Inkwell (and "Women's" is women)
                tok, end = tok[:-2], end - 2
            tok = tok.replace("'", "")
        if "," in tok:
            tok = tok.replace(",", "")
        if tok:
            out.append((tok, start, end))
    return out


def _merge(raw: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Numbers with their units, size words, spellings; marks that follow no number are dropped."""
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(raw)
    while i < n:
        tok, start, end = raw[i]
        number = None
        if _NUMBER.fullmatch(tok):
            number = canonical_number(tok)
        elif tok in _NUMBER_WORDS:
            number = _NUMBER_WORDS[tok]
        if number is not None:
            for width in range(min(_MAX_UNIT_TOKENS, n - i - 1), 0, -1):
                unit = _UNITS.get(tuple(t for t, _, _ in raw[i + 1 : i + 1 + width]))
                if unit is not None:
                    out.append((number + unit, start, raw[i + width][2]))
                    i += width + 1
                    break
            else:
                out.append((number if _NUMBER.fullmatch(tok) else tok, start, end))
                i += 1
            continue
        if tok in _MARKS:
            i += 1
            continue
        glued = _GLUED.fullmatch(tok)
        if glued is not None and glued.group(2) in _GLUED_UNITS:
            out.append((canonical_number(glued.group(1)) + _GLUED_UNITS[glued.group(2)], start, end))
            i += 1
            continue
        size = None
        for width in (2, 1):
            prefix = tuple(t for t, _, _ in raw[i : i + width])
            if len(prefix) == width and prefix in _SIZE_PREFIX and i + width < n and raw[i + width][0] in _SIZE_WORD:
                size = (_SIZE_PREFIX[prefix] + _SIZE_WORD[raw[i + width][0]], width)
                break
        if size is not None:
            out.append((size[0], start, raw[i + size[1]][2]))
            i += size[1] + 1
            continue
        out.append((_SPELLING.get(tok, tok), start, end))
        i += 1
    return out


def normalize_text(text: str) -> NormalizedText:
    """Tokens of `text` in canonical form, with their spans in `text` (see the module docstring)."""
    folded, index = _fold(text)
    tokens = _merge(_raw_tokens(folded))
    if index is None:
        starts = tuple(s for _, s, _ in tokens)
        ends = tuple(e for _, _, e in tokens)
    else:
        # a token ends where the next kept character starts: combining marks folded away stay inside
        starts = tuple(index[s] for _, s, _ in tokens)
        ends = tuple(index[e] if e < len(index) else len(text) for _, _, e in tokens)
    return NormalizedText(tuple(t for t, _, _ in tokens), starts, ends)


@lru_cache(maxsize=262144)
def normalize_value(value: str) -> str:
    """The canonical form of a value (or any text): tokens joined by single spaces."""
    folded, _ = _fold(value)
    return " ".join(t for t, _, _ in _merge(_raw_tokens(folded)))


def normalize_key(key: str) -> str:
    """Attribute keys compare case- and whitespace-insensitively ("Color" == "color ")."""
    return " ".join(key.casefold().split())


# -- model numbers -------------------------------------------------------------------------------
_MODEL_KEY = re.compile(r"model|mpn|sku|upc|ean|gtin|asin|isbn|mfr|part ?(?:no|num|number|#)|item ?(?:no|number)")
_NOT_COMPACT = re.compile(r"[^0-9a-z+]")


def is_model_key(key: str) -> bool:
    """Keys whose values are identifiers (model number, MPN, SKU, UPC, ...)."""
    return _MODEL_KEY.search(normalize_key(key)) is not None


def is_model_like(key: str, value: str) -> bool:
    """An identifier: the key says so, or the value is one word with both letters and digits."""
    if is_model_key(key):
        return True
    value = value.strip()
    return bool(value) and not any(c.isspace() for c in value) and any(c.isalpha() for c in value) \
        and any(c.isdigit() for c in value)


def compact(value: str) -> str:
    """An identifier without separators: "NV-AX2-256-BL", "nv ax2 256bl" -> "nvax2256bl".

    "+" is kept: "HDR10+" is not "HDR10".
    """
    folded, _ = _fold(value)
    return _NOT_COMPACT.sub("", folded)


# -- colours -------------------------------------------------------------------------------------
# Colour name -> family. Multi-word names are looked up whole first ("rose gold" is pink, not
# gold); otherwise the last colour word of the first part decides ("Midnight Blue" -> blue,
# "Black/Red" -> black). Convention: Rose Gold is pink, Champagne Gold is gold, Stainless Steel
# and the metals are silver, Graphite/Charcoal are gray, Cream/Ivory/Tan are beige.
COLOR_FAMILIES: dict[str, str] = {}


def _add_colors(family: str, names: str) -> None:
    for name in names.split(","):
        if name.strip():
            COLOR_FAMILIES[normalize_value(name.strip())] = family


_add_colors("black", "black,onyx,jet,jet black,ebony,obsidian,midnight black,matte black,piano black,phantom black,"
                     "carbon black,raven,licorice,noir")
_add_colors("white", "white,snow,pearl,pearl white,alabaster,chalk,arctic white,frost,frost white,porcelain,"
                     "glacier white,ceramic white")
_add_colors("gray", "gray,grey,graphite,charcoal,slate,gunmetal,space gray,space grey,ash,smoke,pewter,"
                    "stone,cement,heather gray,heather grey,grayish,greyish,dark gray,light gray")
_add_colors("silver", "silver,platinum,chrome,aluminum,aluminium,stainless,stainless steel,steel,titanium,"
                      "brushed metal,brushed aluminum,metallic,nickel,satin nickel,brushed nickel")
_add_colors("gold", "gold,champagne,champagne gold,brass,golden")
_add_colors("pink", "pink,rose,rose gold,pinkish,pinkish gold,blush,salmon,magenta,fuchsia,hot pink,"
                    "bubblegum,rose pink")
_add_colors("red", "red,reddish,crimson,scarlet,burgundy,maroon,wine,cherry,ruby,coral,brick,cardinal,oxblood,"
                   "garnet,dark red")
_add_colors("orange", "orange,tangerine,rust,amber,apricot,peach,copper,sunset orange,burnt orange")
_add_colors("yellow", "yellow,yellowish,mustard,lemon,canary,sunflower,butter,mellow yellow")
_add_colors("green", "green,greenish,olive,army green,sage,mint,lime,emerald,jade,forest,forest green,hunter green,"
                     "khaki green,moss,pine,kelly green,seafoam")
_add_colors("teal", "teal,turquoise,aqua,cyan,blue green,blue-green,aquamarine")
_add_colors("blue", "blue,bluish,navy,navy blue,cobalt,sapphire,indigo,azure,cerulean,denim,sky blue,royal blue,"
                    "midnight blue,dark blue,light blue,baby blue,steel blue,ocean,ocean blue,periwinkle")
_add_colors("purple", "purple,purplish,violet,lavender,lilac,plum,mauve,orchid,amethyst,eggplant,grape")
_add_colors("brown", "brown,chocolate,espresso,walnut,mocha,coffee,cognac,chestnut,mahogany,bronze,caramel,"
                     "saddle,umber,cocoa,oak,cherry wood")
_add_colors("beige", "beige,tan,cream,ivory,sand,khaki,taupe,off white,off-white,oatmeal,linen,camel,ecru,"
                     "bone,nude,champagne beige")
_add_colors("clear", "clear,transparent,translucent,crystal")
_add_colors("multi", "multi,multicolor,multicolored,multi color,multi colored,rainbow,assorted")

# Bare family words: a reviewer's "the blue one" names a family, not a product colour.
FAMILY_WORDS: frozenset[str] = frozenset(set(COLOR_FAMILIES.values()) | {"gray"})
# Words that name a colour in running text, for "the blue one". Most colour names are also
# ordinary words ("power brick", "coffee", "clear picture", "stone", "forest"): only names
# ending in a family word ("navy blue", "rose gold", "off white"), "-ish" forms and a few
# unambiguous names trigger the family pass; `base_color` still knows them all.
_UNAMBIGUOUS = {"navy", "burgundy", "maroon", "turquoise", "lavender", "lilac", "magenta", "fuchsia", "crimson",
                "scarlet", "indigo", "cyan", "beige", "taupe", "charcoal", "aquamarine"}
COLOR_WORDS: dict[str, str] = {
    name: family for name, family in COLOR_FAMILIES.items()
    if name.split()[-1] in FAMILY_WORDS | {"grey"} or name.endswith("ish") or name in _UNAMBIGUOUS
}
COLOR_WORDS.pop("clear", None)  # "a clear picture"
COLOR_WORDS.pop("multi", None)
_PART_SPLIT = re.compile(r"\s*(?:/|&|\band\b|\bwith\b|,)\s*")


@lru_cache(maxsize=65536)
def base_color(value: str) -> str | None:
    """The colour family of a colour name ("Midnight Blue" -> "blue", "Rose Gold" -> "pink",
    "Graphite" -> "gray"); None when no word of it is a known colour."""
    norm = normalize_value(value)
    if not norm:
        return None
    if norm in COLOR_FAMILIES:
        return COLOR_FAMILIES[norm]
    # "Black/Red": the first colour part is the main one; "Black / Red" alike
    first = _PART_SPLIT.split(norm.replace("/", " / "))[0]
    if first in COLOR_FAMILIES:
        return COLOR_FAMILIES[first]
    words = first.split()
    for width in (2, 1):  # the last colour word (or pair) decides: "Deep Sea Blue" -> blue
        for i in range(len(words) - width, -1, -1):
            family = COLOR_FAMILIES.get(" ".join(words[i : i + width]))
            if family is not None:
                return family
    return None


def is_color_key(key: str) -> bool:
    k = normalize_key(key)
    return "color" in k or "colour" in k


# -- variants ------------------------------------------------------------------------------------
_SIZE_FORM = re.compile(r"(?:us|uk|eu|size|us size|uk size|eu size) (\d+(?:\.\d+)?)")
_SIZE_LETTERS = {"small": "s", "medium": "m", "large": "l", "xs": "xs", "xl": "xl", "xxl": "xxl", "xxxl": "xxxl",
                 "xxs": "xxs"}


def value_variants(key: str, norm: str, compact_form: str | None) -> list[tuple[str, str]]:
    """(variant, kind) of a normalised value under a canonical key; `compact_form` only for identifiers.

    Kinds: "exact" (the value), "compact" (the identifier without separators), "alias" (an
    equivalent way to state a size: "size 7.5" for "US 7.5", "size l" for "Large").
    """
    if not norm:
        return []
    out = [(norm, "exact")]
    if compact_form and compact_form != norm:
        out.append((compact_form, "compact"))
    if "size" in key:
        m = _SIZE_FORM.fullmatch(norm)
        if m is not None and f"size {m.group(1)}" != norm:
            out.append((f"size {m.group(1)}", "alias"))
        letter = _SIZE_LETTERS.get(norm)
        if letter is not None:
            out.append((f"size {letter}", "alias"))
    return out


def surface_variants(key: str, value: str) -> list[str]:
    """The normalised strings whose presence in normalised text states this value.

    The value's normal form; for identifiers also the form without separators ("nvax2256bl");
    for sizes also "size 7.5" (for "US 7.5") or "size l" (for "Large").
    """
    compact_form = compact(value) if is_model_like(key, value) else None
    return [v for v, _ in value_variants(normalize_key(key), normalize_value(value), compact_form)]
