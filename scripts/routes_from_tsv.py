"""Regenerate the utterance lists in roles/base.toml from tests/data/router_train.tsv.

Keeps everything else in base.toml (roles, tiers, thresholds); replaces each
`utterances = [...]` of a route and `out_of_scope = [...]` with the file's rows.
Usage: python scripts/routes_from_tsv.py [TRAIN.tsv]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def toml_list(items: list[str]) -> str:
    return "[\n" + "".join(f"    {json.dumps(item)},\n" for item in items) + "]"


def main() -> int:
    train = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests" / "data" / "router_train.tsv"
    rows = [line.split("\t", 1) for line in train.read_text().splitlines() if line.strip() and not line.startswith("#")]
    base = REPO / "roles" / "base.toml"
    text = base.read_text()
    oos = [t for label, t in rows if label == "none"]
    text = re.sub(r"out_of_scope = \[\n.*?\n\]", lambda _: f"out_of_scope = {toml_list(oos)}", text, flags=re.S)
    for route in sorted({label for label, _ in rows} - {"none"}):
        utterances = [t for label, t in rows if label == route]
        pattern = rf"(\[routes\.{route}\]\n(?:[^\[\n][^\n]*\n)*?)utterances = \[\n.*?\n\]"
        new = toml_list(utterances)
        text, count = re.subn(pattern, lambda m, new=new: f"{m.group(1)}utterances = {new}", text, flags=re.S)
        if count != 1:
            print(f"no [routes.{route}] with an utterances list in {base}", file=sys.stderr)
            return 1
    base.write_text(text)
    print(f"{base}: {len(rows) - len(oos)} utterances, {len(oos)} out-of-scope examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
