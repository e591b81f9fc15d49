"""An offline HTML report of one evaluation run: tables, a few matplotlib charts, linked examples.

`write_report(metrics, rows, out_dir)` writes `out_dir/report.html` and its PNGs in
`out_dir/report_files/`, referenced by relative path, so the folder opens offline (no JS, no CDN,
inline CSS only). Every input may be partial: a section whose data is absent is left out, and a
section whose data cannot be drawn is replaced by a note instead of failing the whole report.
All text from the run (mention ids, attribute values: reviews are untrusted) is HTML-escaped.

matplotlib is imported lazily, inside the drawing functions, and only its object-oriented API is
used (`matplotlib.figure.Figure` rendered by the Agg canvas): no pyplot, so nothing changes the
process's backend and no figure stays registered after it is saved.

`attribute_error_breakdown` answers the AMELI paper's open question for one run: when the linker
picks the wrong product, which kind of attribute tells the two apart (model code, size/capacity,
colour, other)?
"""

from __future__ import annotations

import html
import logging
import math
import numbers
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ameli_ray.attributes.normalize import is_color_key, is_model_key, normalize_key

__all__ = [
    "ANSWERED_NO_MATCH",
    "ATTRIBUTE_TYPES",
    "NO_ATTRIBUTE_DIFFERS",
    "TYPE_PRIORITY",
    "attribute_error_breakdown",
    "attribute_type",
    "write_report",
]

log = logging.getLogger(__name__)

ATTRIBUTE_TYPES = ("model code", "size/capacity", "colour", "other")
# The order in which a differing attribute type "decides" a wrong answer (first found wins). Model
# codes come last: every variant of a family has its own, so a code differs between any two
# siblings and would swallow the breakdown; what tells siblings apart in a review is the size or
# capacity, the colour or another stated value, and the code decides only when nothing else differs.
TYPE_PRIORITY = ("size/capacity", "colour", "other", "model code")
NO_ATTRIBUTE_DIFFERS = "no attribute differs"
ANSWERED_NO_MATCH = "answered no match"
_ERROR_CATEGORIES = (*ATTRIBUTE_TYPES, NO_ATTRIBUTE_DIFFERS, ANSWERED_NO_MATCH)

HEADLINE_KEYS = ("accuracy", "recall@10", "retrieval_accuracy", "nil_precision", "nil_recall", "n_mentions")
_DPI = 110

# -- attribute types -------------------------------------------------------------------------------
# Why a rule table: the breakdown has to be auditable by reading it, and the catalogue's keys are few
# and conventional ("Color", "Storage Capacity", "Model Number"). Rules are tried top to bottom on the
# key first (the key says what the value is), then on the value (a key like "Variant" or "Spec" says
# nothing): a number with a unit is a size/capacity, one word mixing letters and digits is a model code
# (units first, so "256GB" is a capacity, not a code).
# Model and colour keys are told by the same predicates the attribute matcher uses
# (`attributes.normalize.is_model_key`, `is_color_key`); sizes by this pattern.
_SIZE_KEY = re.compile(r"\b(?:size|capacity|storage|memory|ram|screen|weight|volume|dimensions?|wattage|battery)\b")
_UNITS = r'(?:gb|tb|mb|inch(?:es)?|in|"|\'\'|mm|cm|oz|fl oz|lbs?|kg|ml|l|w|mah|qt|gal)'
# a number with a unit, not inside a word ("KDL40V5100" is a code, "40 V" no unit we know)
_UNIT_VALUE = re.compile(r"(?<![a-z0-9.])\d+(?:[.,]\d+)?\s*-?\s*" + _UNITS + r"(?![a-z0-9])", re.IGNORECASE)
# one word of >= 4 characters with both letters and digits: "DCS-1100", "KDL40V5100", "NV-AX2-256-BL"
_CODE_VALUE = re.compile(r"^(?=[^\s]*[a-z])(?=[^\s]*\d)[a-z0-9][a-z0-9\-./_+]{3,}$", re.IGNORECASE)


@lru_cache(maxsize=65536)
def attribute_type(key: str, value: str = "") -> str:
    """"colour" | "size/capacity" | "model code" | "other" for an attribute (key, value); see the rule table."""
    k = normalize_key(str(key or ""))
    if is_model_key(k):
        return "model code"
    if is_color_key(k) or "finish" in k:
        return "colour"
    if _SIZE_KEY.search(k):
        return "size/capacity"
    v = str(value or "").strip()
    if _UNIT_VALUE.search(v):
        return "size/capacity"
    if _CODE_VALUE.match(v):
        return "model code"
    return "other"


# -- small, forgiving readers of rows and metrics ----------------------------------------------------
def _seq(value: Any) -> list:
    """A list from a list, tuple or numpy array; [] for None or a scalar."""
    if value is None or isinstance(value, (str, bytes, Mapping)):
        return []
    try:
        return list(value)
    except TypeError:
        return []


def _num(value: Any) -> float | None:
    """A finite float, or None (None, NaN, bool, text)."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _id(value: Any) -> str | None:
    """An id as text; None for None/NaN (pandas turns a missing string into either)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _gold(row: Mapping) -> str | None:
    return _id(row.get("gold_entity_id"))


def _answer(row: Mapping) -> str:
    return _id(row.get("entity_id")) or ""


def _as_float(value: Any) -> float | None:
    """A key like "0.95" as a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_metric(value: Any) -> bool:
    """A number to show (NaN included, shown as a dash); bools and text are not."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _contradicts(key: str, a: Any, b: Any) -> bool:
    """The linker's own rule (`attributes.extract.relation`): the report shows what it saw."""
    from ameli_ray.attributes.extract import CONTRADICT, relation

    return relation(key, str(a), str(b))[0] == CONTRADICT


def _entity_index(entities: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, tuple[str, str]]]:
    """entity id -> normalised key -> (key as written, value)."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for eid, attrs in (entities or {}).items():
        if isinstance(attrs, Mapping):
            out[str(eid)] = {normalize_key(str(k)): (str(k), "" if v is None else str(v)) for k, v in attrs.items()}
    return out


# -- the error breakdown ---------------------------------------------------------------------------
# Keys that differ between any two products and so never say which attribute decided: the name
# itself (the entity-matching sets carry it as an attribute) and sellers' prices ("price" in the key).
_NOT_DECIDING = frozenset({"name", "product name", "title", "product title"})

def _differing_types(a: Mapping[str, tuple[str, str]], b: Mapping[str, tuple[str, str]]) -> set[str]:
    """Types of the keys both entities have with different values (a key only one has says nothing)."""
    types = set()
    for k in a.keys() & b.keys():
        if "price" in k or k in _NOT_DECIDING:
            continue
        (key, va), (_, vb) = a[k], b[k]
        if _contradicts(key, va, vb):
            kinds = (attribute_type(key, va), attribute_type(key, vb))
            types.add(min(kinds, key=lambda t: ATTRIBUTE_TYPES.index(t)))
    return types


def attribute_error_breakdown(
    rows: Iterable[Mapping], entities: Mapping[str, Mapping[str, Any]], *, priority: Sequence[str] = TYPE_PRIORITY
) -> dict:
    """Errors broken down by the attribute type that decides.

    Over labelled mentions whose gold is a real entity and whose answer is wrong: an answer of "no
    matching product" is counted as `"answered no match"`; otherwise, with both the answer's and the
    gold's attributes known, the keys both entities have with values the linker's rule calls
    contradicting decide (names and prices never do), and the mention is counted under the first
    of their types in `priority` (size/capacity > colour > other > model code), or `"no attribute
    differs"`. Errors whose answer or gold entity
    is not in `entities` are counted in `n_unclassified` only.

    Returns `errors_by_type` (every category, zeros included), `n_errors` (classified errors),
    `n_unclassified`, `differing_by_type` (errors in which each type differs at all: one error may
    count under several types; with per-product model numbers, "model code" differs in almost every
    error and hides the rest under the priority rule), and `with_sibling_by_type`: type ->
    {n, right, accuracy} over all such labelled mentions whose gold has another candidate that
    differs from it in that type (how often the linker gets it right when that type must decide).
    """
    order = [t for t in priority if t in ATTRIBUTE_TYPES] + [t for t in ATTRIBUTE_TYPES if t not in priority]
    index = _entity_index(entities)
    errors: Counter[str] = Counter(dict.fromkeys(_ERROR_CATEGORIES, 0))
    differing: Counter[str] = Counter(dict.fromkeys(ATTRIBUTE_TYPES, 0))
    sib_n: Counter[str] = Counter(dict.fromkeys(ATTRIBUTE_TYPES, 0))
    sib_right: Counter[str] = Counter(dict.fromkeys(ATTRIBUTE_TYPES, 0))
    pair_cache: dict[tuple[str, str], set[str]] = {}

    def pair_types(g: str, c: str) -> set[str]:
        if (g, c) not in pair_cache:
            pair_cache[(g, c)] = _differing_types(index[g], index[c])
        return pair_cache[(g, c)]

    n_errors = n_unclassified = 0
    for row in rows:
        gold = _gold(row)
        if not gold:  # unlabelled, or a labelled no-match mention
            continue
        answer = _answer(row)
        right = answer == gold
        if gold in index:
            sibling_types: set[str] = set()
            for cand in {str(c) for c in _seq(row.get("candidate_ids"))}:
                if cand != gold and cand in index:
                    sibling_types |= pair_types(gold, cand)
            for t in sibling_types:
                sib_n[t] += 1
                sib_right[t] += right
        if right:
            continue
        if not answer:
            errors[ANSWERED_NO_MATCH] += 1
            n_errors += 1
            continue
        if gold not in index or answer not in index:
            n_unclassified += 1
            continue
        types = pair_types(gold, answer)
        differing.update(types)
        errors[next((t for t in order if t in types), NO_ATTRIBUTE_DIFFERS)] += 1
        n_errors += 1
    return {
        "errors_by_type": dict(errors),
        "n_errors": n_errors,
        "n_unclassified": n_unclassified,
        "differing_by_type": dict(differing),
        "with_sibling_by_type": {
            t: {"n": sib_n[t], "right": sib_right[t], "accuracy": sib_right[t] / sib_n[t] if sib_n[t] else None}
            for t in ATTRIBUTE_TYPES
        },
    }


# -- HTML helpers ----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            return "—"
        return str(int(f)) if f.is_integer() and abs(f) >= 2 else f"{f:.{digits}f}"
    return _e(value)


def _table(header: Sequence[str], body: Iterable[Sequence[Any]], *, cls: str = "") -> str:
    """Header cells are escaped; body cells are formatted with _fmt unless already markup (a `_Raw`)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for cells in body:
        tds = "".join(f"<td>{c.html if isinstance(c, _Raw) else _fmt(c)}</td>" for c in cells)
        lines.append(f"<tr>{tds}</tr>")
    attr = f' class="{_e(cls)}"' if cls else ""
    return f'<table{attr}><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


class _Raw:
    """Markup that _table must not escape (built from escaped parts)."""

    def __init__(self, markup: str) -> None:
        self.html = markup


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return ""
    return f'<figure><img src="report_files/{_e(path.name)}" alt="{_e(alt)}"></figure>'


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.0em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td{font-variant-numeric:tabular-nums}
figure{margin:.8em 0;display:inline-block;vertical-align:top}figure img{max-width:100%;border:1px solid #eee}
.note{color:#666;font-size:.9em}.ok{color:#11772b;font-weight:600}.bad{color:#b3261e;font-weight:600}
.matched{background:#e6f4ea}.contradicted{background:#fce8e6}.unknown{color:#888}
.example{border:1px solid #ddd;border-radius:4px;padding:.5em 1em;margin:.8em 0}
.example table{font-size:.85em}
"""


# -- charts ------------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # lazy: importing this module stays cheap

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _save(fig, files: Path, name: str) -> Path:
    path = files / f"{name}.png"
    try:
        fig.savefig(path, dpi=_DPI, format="png")
    finally:
        fig.clear()  # no pyplot: nothing else holds the figure once this goes out of scope
    return path


def _chart_ablations(ablations: Mapping[str, Mapping], files: Path) -> Path | None:
    names = [str(n) for n, v in ablations.items() if isinstance(v, Mapping) and _num(v.get("accuracy")) is not None]
    if not names:
        return None
    values = [_num(ablations[n]["accuracy"]) for n in names]
    fig = _figure(7.0, 0.38 * len(names) + 1.1)
    ax = fig.add_subplot()
    ys = range(len(names))
    ax.barh(list(ys), values, color="#4c72b0", height=0.6)
    ax.set_yticks(list(ys), labels=names, fontsize=8)
    ax.invert_yaxis()  # first row on top, as given
    top = max(1.0, max(values))
    ax.set_xlim(0, top * 1.12)
    for y, v in zip(ys, values):
        ax.text(v + top * 0.01, y, f"{v:.3f}", va="center", fontsize=8)
    ax.set_xlabel("accuracy")
    ax.set_title("Ablations: accuracy per row", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, files, "ablations")


def _chart_reliability(cal: Mapping, files: Path) -> Path | None:
    bins = [b for b in _seq(cal.get("reliability")) if isinstance(b, Mapping) and _num(b.get("accuracy")) is not None]
    if not bins:
        return None
    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888", linewidth=1, label="perfect calibration")
    width_default = 1.0 / max(len(bins), 1)
    first = True
    for b in bins:
        n = b.get("n")
        if _num(n) is not None and _num(n) == 0:
            continue
        lo, hi, conf = _num(b.get("lo")), _num(b.get("hi")), _num(b.get("confidence"))
        if lo is None or hi is None:
            centre = conf if conf is not None else 0.5
            lo, hi = centre - width_default / 2, centre + width_default / 2
        acc = _num(b["accuracy"])
        ax.bar(lo, acc, width=hi - lo, align="edge", color="#4c72b0", edgecolor="white", alpha=0.85,
               label="accuracy in bin" if first else None)
        if conf is not None:
            ax.plot([conf], [acc], marker="D", color="#dd8452", markersize=4, linestyle="none",
                    label="mean confidence" if first else None)
        if _num(n) is not None:  # the count inside the bar's foot, clear of the diagonal and the markers
            inside = acc >= 0.16
            ax.text((lo + hi) / 2, 0.015 if inside else acc + 0.04, f"n={int(_num(n))}", ha="center", va="bottom",
                    fontsize=6.5, color="white" if inside else "#333", rotation=90 if len(bins) > 6 else 0)
        first = False
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    title = "Reliability diagram"
    if cal.get("method"):
        title += f" ({cal['method']})"
    if _num(cal.get("ece")) is not None:
        title += f"\nECE {_num(cal['ece']):.3f}"
        if _num(cal.get("ece_uncalibrated")) is not None:
            title += f" (uncalibrated {_num(cal['ece_uncalibrated']):.3f})"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    return _save(fig, files, "reliability")


def _chart_precision_coverage(cal: Mapping, files: Path) -> Path | None:
    points = [p for p in _seq(cal.get("precision_at_coverage"))
              if isinstance(p, Mapping) and _num(p.get("coverage")) is not None and _num(p.get("precision")) is not None]
    if not points:
        return None
    points.sort(key=lambda p: _num(p["coverage"]))
    xs = [_num(p["coverage"]) for p in points]
    ys = [_num(p["precision"]) for p in points]
    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.plot(xs, ys, marker="o", markersize=3.5, color="#4c72b0", label="precision of the answers kept")
    at = cal.get("coverage_at_precision") if isinstance(cal.get("coverage_at_precision"), Mapping) else {}
    low = min(ys + [0.95])
    reachable = {round(f, 6): v for k, v in at.items() if (f := _as_float(k)) is not None}
    for level, colour in ((0.95, "#dd8452"), (0.99, "#55a868")):
        text = f"precision {level:.2f}"
        if level in reachable:
            cov = _num(reachable[level])
            if cov is None:
                text += ": not reached"
            else:  # where the curve reaches it: a marker, named in the legend (no free text to collide)
                ax.axvline(cov, color=colour, linestyle=":", linewidth=1)
                ax.plot([cov], [level], marker="o", color=colour, markersize=6, markerfacecolor="none")
                text += f": coverage {cov:.2f}"
        ax.axhline(level, color=colour, linestyle="--", linewidth=1, label=text)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(max(0.0, low - 0.06), 1.01)
    ax.set_xlabel("coverage (share of mentions answered)")
    ax.set_ylabel("precision")
    ax.set_title("Precision at coverage", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7, framealpha=0.9)
    return _save(fig, files, "precision_coverage")


def _chart_fusion(fusion: Mapping, files: Path) -> Path | None:
    grid = [g for g in _seq(fusion.get("grid")) if isinstance(g, Mapping)
            and all(_num(g.get(k)) is not None for k in ("retrieval", "text", "accuracy"))]
    if not grid:
        return None
    import numpy as np

    text_ws = sorted({round(_num(g["text"]), 6) for g in grid})
    ret_ws = sorted({round(_num(g["retrieval"]), 6) for g in grid})
    cells = np.full((len(ret_ws), len(text_ws)), np.nan)
    for g in grid:
        cells[ret_ws.index(round(_num(g["retrieval"]), 6)), text_ws.index(round(_num(g["text"]), 6))] = _num(g["accuracy"])
    side = min(6.4, max(3.8, 0.42 * max(len(text_ws), len(ret_ws)) + 1.6))
    fig = _figure(side + 0.9, side)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(cells)
    image = ax.imshow(masked, origin="lower", cmap="viridis", aspect="auto")
    cbar = fig.colorbar(image, ax=ax, shrink=0.85)
    cbar.set_label("dev accuracy")
    step = max(1, math.ceil(len(text_ws) / 11))
    ax.set_xticks(range(0, len(text_ws), step), labels=[f"{w:.2g}" for w in text_ws[::step]], fontsize=8)
    step = max(1, math.ceil(len(ret_ws) / 11))
    ax.set_yticks(range(0, len(ret_ws), step), labels=[f"{w:.2g}" for w in ret_ws[::step]], fontsize=8)
    ax.set_xlabel("text weight")
    ax.set_ylabel("retrieval weight")
    ax.set_title("Fusion weights on dev (image = 1 − text − retrieval)", fontsize=10)
    if len(text_ws) <= 11 and len(ret_ws) <= 11:
        finite = cells[np.isfinite(cells)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.5
        for i in range(len(ret_ws)):
            for j in range(len(text_ws)):
                if np.isfinite(cells[i, j]):
                    ax.text(j, i, f"{cells[i, j]:.2f}".lstrip("0") if cells[i, j] < 1 else "1.0", ha="center",
                            va="center", fontsize=6.5, color="white" if cells[i, j] < mid else "black")
    weights = fusion.get("weights") if isinstance(fusion.get("weights"), Mapping) else {}
    wt, wr = _num(weights.get("text")), _num(weights.get("retrieval"))
    if wt is not None and wr is not None:
        j = int(np.argmin([abs(w - wt) for w in text_ws]))
        i = int(np.argmin([abs(w - wr) for w in ret_ws]))
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        wi = _num(weights.get("image"))
        label = f"chosen: retrieval {wr:.2f}, text {wt:.2f}" + (f", image {wi:.2f}" if wi is not None else "")
        ax.text(0.98, 0.98, label, transform=ax.transAxes, ha="right", va="top", fontsize=7.5, color="red",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 2})
    return _save(fig, files, "fusion_grid")


def _chart_errors(breakdown: Mapping, files: Path) -> Path | None:
    counts = breakdown.get("errors_by_type") or {}
    labels = [c for c in _ERROR_CATEGORIES if c in counts] + [c for c in counts if c not in _ERROR_CATEGORIES]
    if not labels or not any(_num(counts[c]) for c in labels):
        return None
    values = [_num(counts[c]) or 0 for c in labels]
    fig = _figure(6.4, 3.2)
    ax = fig.add_subplot()
    colours = ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860", "#8c8c8c"]
    xs = list(range(len(labels)))
    ax.bar(xs, values, color=[colours[i % len(colours)] for i in xs], width=0.65)
    ax.set_xticks(xs, labels=[lbl.replace(" ", "\n", 1) if len(lbl) > 12 else lbl for lbl in labels], fontsize=8)
    for x, v in zip(xs, values):
        ax.text(x, v, f"{int(v)}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(values) * 1.15 + 0.5)
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("wrong answers")
    ax.set_title(f"Errors by deciding attribute type (n = {int(breakdown.get('n_errors') or sum(values))})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, files, "errors_by_type")


# -- sections ----------------------------------------------------------------------------------------
def _section_headline(metrics: Mapping) -> str:
    baseline = metrics.get("baseline") if isinstance(metrics.get("baseline"), Mapping) else {}
    baselines = {str(name): b for name, b in baseline.items() if isinstance(b, Mapping)}
    keys = [k for k in HEADLINE_KEYS if _is_metric(metrics.get(k))]
    keys += [k for b in baselines.values() for k in b if k in HEADLINE_KEYS and k not in keys and _is_metric(b[k])]
    if not keys:
        return ""
    header = ["metric", "this run", *(f"baseline: {n}" for n in baselines)]
    body = [[k, metrics.get(k), *(b.get(k) if _is_metric(b.get(k)) else None for b in baselines.values())] for k in keys]
    return "<h2>Headline</h2>" + _table(header, body, cls="headline")


def _section_other_metrics(metrics: Mapping) -> str:
    items = [(str(k), v) for k, v in metrics.items() if k not in HEADLINE_KEYS and _is_metric(v)]
    if not items:
        return ""
    per_row = 3
    body = []
    for i in range(0, len(items), per_row):
        chunk = items[i:i + per_row]
        cells: list[Any] = []
        for k, v in chunk:
            cells += [k, v]
        cells += ["", _Raw("")] * (per_row - len(chunk))
        body.append(cells)
    return "<h2>Other metrics</h2>" + _table(["metric", "value"] * per_row, body, cls="compact")


def _section_ablations(ablations: Mapping, files: Path) -> str:
    rows = {str(n): v for n, v in ablations.items() if isinstance(v, Mapping)}
    if not rows:
        return ""
    columns: list[str] = []
    for v in rows.values():
        columns += [str(k) for k, x in v.items() if _is_metric(x) and str(k) not in columns]
    chart = _chart_ablations(rows, files)
    body = [[name, *(v.get(c) for c in columns)] for name, v in rows.items()]
    header = ["row", *columns]
    if any(isinstance(v.get("accuracy_vs_full"), Mapping) for v in rows.values()):
        # the paired difference: whether a row's lead over the pipeline is more than the test draw
        header.append("accuracy vs full [95%] · mentions gained / lost")
        for cells, v in zip(body, rows.values()):
            cells.append(_vs_full(v.get("accuracy_vs_full")))
    note = ("<p>The last column compares each row with the full pipeline on the same mentions (a paired bootstrap): "
            "an interval that holds 0 is a difference the test set cannot tell from chance.</p>"
            if len(header) > len(columns) + 1 else "")
    return "<h2>Ablations</h2>" + _img(chart, "accuracy per ablation row") + note + _table(header, body)


def _vs_full(delta: Any) -> str:
    if not isinstance(delta, Mapping) or _num(delta.get("value")) is None:
        return "—"
    lo, hi = (delta.get("ci95") or [math.nan, math.nan])[:2]
    return (f"{float(delta['value']):+.3f} [{float(lo):+.3f}, {float(hi):+.3f}] · "
            f"{int(delta.get('gains', 0))} / {int(delta.get('losses', 0))}")


def _section_calibration(cal: Mapping, files: Path) -> str:
    charts = _img(_chart_reliability(cal, files), "reliability diagram") + _img(
        _chart_precision_coverage(cal, files), "precision at coverage")
    body: list[list[Any]] = []
    if cal.get("method") is not None:
        body.append(["method", _Raw(_e(cal["method"]))])
    for k in ("ece", "ece_uncalibrated"):
        if _is_metric(cal.get(k)):
            body.append([k, cal[k]])
    at = cal.get("coverage_at_precision")
    if isinstance(at, Mapping):
        for level, cov in at.items():
            body.append([f"coverage at precision {level}", cov if _is_metric(cov) else _Raw("not reached")])
    table = _table(["", ""], body) if body else ""
    bins = [b for b in _seq(cal.get("reliability")) if isinstance(b, Mapping)]
    if bins:
        table += "<h3>Reliability bins</h3>" + _table(
            ["bin", "n", "mean confidence", "accuracy"],
            [[_Raw(f"{_fmt(b.get('lo'), 2)}–{_fmt(b.get('hi'), 2)}"), b.get("n"), b.get("confidence"), b.get("accuracy")]
             for b in bins])
    if not charts and not table:
        return ""
    return "<h2>Calibration</h2>" + charts + table


def _section_fusion(fusion: Mapping, files: Path) -> str:
    chart = _chart_fusion(fusion, files)
    weights = fusion.get("weights") if isinstance(fusion.get("weights"), Mapping) else {}
    table = _table(["stream", "weight"], [[k, v] for k, v in weights.items()]) if weights else ""
    if not chart and not table:
        return ""
    return "<h2>Fusion weights</h2>" + _img(chart, "fusion weight grid on dev") + table


def _section_folds(folds: Mapping) -> str:
    mean = folds.get("mean") if isinstance(folds.get("mean"), Mapping) else {}
    ci = folds.get("ci95") if isinstance(folds.get("ci95"), Mapping) else {}
    per_fold = [f for f in _seq(folds.get("per_fold")) if isinstance(f, Mapping)]
    names: list[str] = [str(k) for k in mean]
    for f in per_fold:
        names += [str(k) for k, v in f.items() if _is_metric(v) and str(k) not in names]
    if not names:
        return ""

    def interval(name: str) -> Any:
        lo_hi = _seq(ci.get(name))
        if len(lo_hi) == 2 and all(_num(x) is not None for x in lo_hi):
            return _Raw(f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]")
        return None

    header = ["metric", "mean", "95% interval", *(f"fold {i + 1}" for i in range(len(per_fold)))]
    body = [[n, mean.get(n), interval(n), *(f.get(n) for f in per_fold)] for n in names]
    k = folds.get("k")
    note = f'<p class="note">{_e(k)}-fold cross-validation.</p>' if k is not None else ""
    return "<h2>Cross-validation folds</h2>" + note + _table(header, body)


def _section_errors(rows: Sequence[Mapping], entities: Mapping, files: Path) -> str:
    breakdown = attribute_error_breakdown(rows, entities)
    if not breakdown["n_errors"] and not breakdown["n_unclassified"]:
        return ("<h2>Errors by deciding attribute type</h2>"
                '<p class="note">No wrong answer to a mention with a real gold product.</p>')
    chart = _chart_errors(breakdown, files)
    sib = breakdown["with_sibling_by_type"]
    body = []
    for cat, count in breakdown["errors_by_type"].items():
        s = sib.get(cat, {})
        body.append([cat, count, breakdown["differing_by_type"].get(cat), s.get("n"), s.get("right"), s.get("accuracy")])
    note = (
        '<p class="note">A wrong answer is counted under the first type, in the order model code &gt; size/capacity '
        "&gt; colour &gt; other, among the attributes that the answer and the gold product both have with different "
        "values. &ldquo;Errors where it differs&rdquo; counts every differing type. The last three columns are over all "
        "mentions with a real gold product whose candidates include another product differing from the gold in that type."
        f" Classified errors: {breakdown['n_errors']}; errors whose products are not in the catalogue given: "
        f"{breakdown['n_unclassified']}.</p>"
    )
    table = _table(["deciding type", "errors", "errors where it differs", "mentions with such a sibling", "right",
                    "accuracy"], body)
    return "<h2>Errors by deciding attribute type</h2>" + note + _img(chart, "errors by deciding attribute type") + table


def _attr_status(index: Mapping[str, Mapping[str, tuple[str, str]]], eid: str | None, key: str, value: Any) -> str:
    if not eid:
        return "n/a"
    attrs = index.get(eid)
    if attrs is None or normalize_key(key) not in attrs:
        return "unknown"
    return "contradicted" if _contradicts(key, value, attrs[normalize_key(key)][1]) else "matched"


def _pick_examples(rows: Sequence[Mapping], max_examples: int) -> list[Mapping]:
    """Some wrong and some right answers, first by mention id; unlabelled ones only to fill up."""
    if max_examples <= 0:
        return []
    by_id = sorted(rows, key=lambda r: str(r.get("mention_id", "")))
    wrong = [r for r in by_id if _gold(r) is not None and _answer(r) != _gold(r)]
    right = [r for r in by_id if _gold(r) is not None and _answer(r) == _gold(r)]
    unlabelled = [r for r in by_id if _gold(r) is None]
    n_wrong = min(len(wrong), math.ceil(max_examples / 2))
    n_right = min(len(right), max_examples - n_wrong)
    n_wrong = min(len(wrong), max_examples - n_right)
    picked = wrong[:n_wrong] + right[:n_right]
    return picked + unlabelled[: max_examples - len(picked)]


def _section_examples(rows: Sequence[Mapping], entities: Mapping | None, max_examples: int) -> str:
    picked = _pick_examples(rows, max_examples)
    if not picked:
        return ""
    index = _entity_index(entities)
    parts = ["<h2>Linked examples</h2>",
             '<p class="note">Attributes read from the review, checked against the answer and the gold product: '
             '<span class="matched">matched</span> (same key, a value the linker accepts), <span class="contradicted">contradicted</span> '
             "(same key, a value the linker's attribute filter rejects), unknown (the product has no such key).</p>"]
    for row in picked:
        gold, answer = _gold(row), _answer(row)
        if gold is None:
            verdict = '<span class="note">unlabelled</span>'
        elif answer == gold:
            verdict = '<span class="ok">right</span>'
        else:
            verdict = '<span class="bad">wrong</span>'
        cands = [str(c) for c in _seq(row.get("candidate_ids"))]
        rank = (cands.index(gold) + 1 if gold in cands else "not retrieved") if gold else None
        conf = _num(row.get("confidence"))
        facts = [
            f"answer <b>{_e(answer) if answer else '<i>no matching product</i>'}</b>",
            f"gold <b>{'<i>unlabelled</i>' if gold is None else (_e(gold) if gold else '<i>no matching product</i>')}</b>",
            f"confidence {_fmt(conf)}",
        ]
        if rank is not None:
            facts.append(f"gold rank in retrieval {_e(rank)}")
        filtered = row.get("filtered")
        if filtered is not None and not isinstance(filtered, str) and bool(filtered):
            facts.append("attribute filter applied")
        attrs = [a for a in _seq(row.get("attributes")) if isinstance(a, Mapping)]
        body = []
        for a in attrs:
            key, value = str(a.get("key", "")), a.get("value", "")
            cells: list[Any] = [key, _Raw(_e(value)), _Raw(_e(a.get("source", ""))), a.get("confidence")]
            for eid in (answer, gold):
                status = _attr_status(index, eid, key, value)
                entity_value = index.get(eid or "", {}).get(normalize_key(key))
                shown = f"{_e(status)}" + (f" ({_e(entity_value[1])})" if status == "contradicted" and entity_value else "")
                cells.append(_Raw(f'<span class="{_e(status.replace("/", ""))}">{shown}</span>'))
            body.append(cells)
        table = (_table(["key", "value read", "source", "confidence", "vs answer", "vs gold"], body)
                 if body else '<p class="note">No attributes read from this review.</p>')
        parts.append(f'<div class="example"><h3>{verdict} mention <code>{_e(row.get("mention_id", "?"))}</code></h3>'
                     f'<p>{" · ".join(facts)}</p>{table}</div>')
    return "".join(parts)


def _guarded(name: str, build: Callable[[], str]) -> str:
    """One section; if its data cannot be drawn, a note instead of no report at all."""
    try:
        return build()
    except Exception as exc:  # a report at the end of a long run must not fail on one odd value
        log.warning("report section %s could not be rendered: %s", name, exc, exc_info=True)
        return f'<h2>{_e(name)}</h2><p class="note">This section could not be rendered: {_e(type(exc).__name__)}: {_e(exc)}</p>'


def write_report(
    metrics: dict,
    rows: list[dict],
    out_dir: str | Path,
    *,
    entities: dict[str, dict[str, str]] | None = None,
    title: str = "ameli-ray evaluation",
    max_examples: int = 8,
) -> Path:
    """Writes out_dir/report.html and its PNGs in out_dir/report_files/; returns the html path."""
    out = Path(out_dir)
    files = out / "report_files"
    files.mkdir(parents=True, exist_ok=True)
    metrics = metrics if isinstance(metrics, Mapping) else {}
    rows = [r for r in _seq(rows) if isinstance(r, Mapping)]

    def sub(key: str) -> Mapping | None:
        value = metrics.get(key)
        return value if isinstance(value, Mapping) and value else None

    sections = [
        _guarded("Headline", lambda: _section_headline(metrics)),
        _guarded("Other metrics", lambda: _section_other_metrics(metrics)),
    ]
    if sub("ablations"):
        sections.append(_guarded("Ablations", lambda: _section_ablations(sub("ablations"), files)))
    if sub("calibration"):
        sections.append(_guarded("Calibration", lambda: _section_calibration(sub("calibration"), files)))
    if sub("fusion"):
        sections.append(_guarded("Fusion weights", lambda: _section_fusion(sub("fusion"), files)))
    if sub("folds"):
        sections.append(_guarded("Cross-validation folds", lambda: _section_folds(sub("folds"))))
    if rows and entities:
        sections.append(_guarded("Errors by deciding attribute type", lambda: _section_errors(rows, entities, files)))
    if rows:
        sections.append(_guarded("Linked examples", lambda: _section_examples(rows, entities, max_examples)))
    n_rows = f"{len(rows)} link results" if rows else "no link results"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="note">{_e(n_rows)}; charts in report_files/.</p>'
        + "".join(s for s in sections if s)
        + "</body></html>\n"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
