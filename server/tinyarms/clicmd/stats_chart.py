"""`tinyarms stats --plot FILE.png` / `--html FILE`: write the trace's chart (see stats_chart.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def write_charts(records: list[dict[str, Any]], plot: str | None, page: str | None) -> int:
    from tinyarms import stats_chart

    if not records:
        print("tinyarms stats: no requests in the decision trace yet; nothing plotted", file=sys.stderr)
        return 1
    try:
        if plot:
            stats_chart.write_png(records, Path(plot))
            print(f"wrote {plot} ({len(records)} requests)")
        if page:
            stats_chart.write_html(records, Path(page))
            print(f"wrote {page} ({len(records)} requests)")
    except OSError as exc:
        print(f"tinyarms stats: {exc}", file=sys.stderr)
        return 1
    return 0
