"""Errors by the attribute type that decides, from the link outputs a cross-validation run stored.

    .venv/bin/python bench/error_breakdown.py --workdir /tmp/m/cv abt_buy amazon_google walmart_amazon

Reads WORKDIR/<set>/data/entities.json and every WORKDIR/<set>/eval/fold-*/links/*.parquet that
`bench/cross_validation.py` wrote, and prints `evaluation.report.attribute_error_breakdown` (the
same rule `evaluate` writes into metrics.json and the report) for each set: what you get after a
change of the rule without training anything again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from ameli_ray.evaluation.report import ANSWERED_NO_MATCH, ATTRIBUTE_TYPES, NO_ATTRIBUTE_DIFFERS, attribute_error_breakdown
from ameli_ray.formats import read_entities
from ameli_ray.storage import ObjectStore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ameli-bench-cv"))
    parser.add_argument("sets", nargs="+")
    args = parser.parse_args()
    table = Table(title="wrong answers by the attribute type that tells the gold from the answer")
    table.add_column("set")
    categories = (*ATTRIBUTE_TYPES, NO_ATTRIBUTE_DIFFERS, ANSWERED_NO_MATCH)
    for c in ("mentions", "errors", *categories):
        table.add_column(c, justify="right")
    for name in args.sets:
        entities = read_entities(str(args.workdir / name / "data" / "entities.json"), ObjectStore())
        files = sorted((args.workdir / name / "eval").glob("fold-*/links/*.parquet"))
        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
        b = attribute_error_breakdown(rows, {e.id: e.attributes for e in entities})
        table.add_row(name, str(len(rows)), str(b["n_errors"]), *[str(b["errors_by_type"][c]) for c in categories])
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
