"""What happens to completions once the editor shows them: shown, accepted, partially
accepted (`accepted_length` characters), dismissed. Recorded locally, one JSON line per
event, in `autocomplete.jsonl` in the state dir next to the decision trace, and summed up
by `tinyarms stats` per model and per source (cache, speculation, model).

Records hold the model, the FIM template, the latency, the source and lengths; the
suggestion's text only with `roles.autocomplete.feedback_text = true`. Nothing is written
per keystroke: only when the editor reports an event (a command, off the completion path),
one O_APPEND write of about 250 bytes; the file is rotated at 20 MB.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from tinyarms import jsonl

log = logging.getLogger(__name__)

EVENTS = ("shown", "accepted", "partial", "dismissed")
REMEMBERED = 512  # completions the editor can still report on
ROTATE_BYTES = 20_000_000


def feedback_path() -> Path:
    return platformdirs.user_state_path("tinyarms") / "autocomplete.jsonl"


@attrs.frozen
class Offered:
    """A completion the server answered, as the feedback record will describe it."""

    model: str
    template: str
    source: str
    latency_ms: float
    length: int
    lines: int
    language: str
    text: str  # kept in memory only; written with feedback_text


class FeedbackLog:
    def __init__(self, path: Path | None = None, *, enabled: bool = True, with_text: bool = False) -> None:
        self.path = path
        self.enabled = enabled
        self.with_text = with_text
        self.offered: OrderedDict[str, Offered] = OrderedDict()
        self.counts: dict[str, int] = defaultdict(int)

    def offer(self, offered: Offered) -> str:
        """A new id for a completion the editor may report on (in memory: the keystroke path)."""
        completion_id = uuid.uuid4().hex[:16]
        self.offered[completion_id] = offered
        if len(self.offered) > REMEMBERED:
            self.offered.popitem(last=False)
        self.counts["offered"] += 1
        return completion_id

    def record(self, completion_id: str, event: str, accepted_length: int | None = None) -> dict[str, Any]:
        """Write one event (`tinyarms.autocomplete.feedback`); returns {"recorded": bool, "reason"?}.
        Raises ValueError on an event or length that makes no sense."""
        if event not in EVENTS:
            raise ValueError(f"event must be one of {', '.join(EVENTS)}, not {event!r}")
        if accepted_length is not None and accepted_length < 0:
            raise ValueError("accepted_length must be 0 or more")
        if event == "partial" and accepted_length is None:
            raise ValueError("a 'partial' event needs accepted_length")
        offered = self.offered.get(completion_id)
        if offered is None:
            reason = f"unknown completion id {completion_id!r} (expired or from another session)"
            return {"recorded": False, "reason": reason}
        self.counts[event] += 1
        if not self.enabled:
            return {"recorded": False, "reason": "roles.autocomplete.feedback is false"}
        accepted = {"accepted": offered.length, "partial": accepted_length, "shown": None, "dismissed": 0}
        record: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "id": completion_id,
            "event": event,
            "model": offered.model,
            "template": offered.template,
            "source": offered.source,
            "latency_ms": offered.latency_ms,
            "length": offered.length,
            "lines": offered.lines,
            "language": offered.language,
        }
        length = accepted[event]
        if length is not None:
            record["accepted_length"] = min(int(length), offered.length)
        if self.with_text:
            record["text"] = offered.text
        return {"recorded": jsonl.append(self.path or feedback_path(), record, rotate_bytes=ROTATE_BYTES)}


def read(*, since_s: float | None = None, path: Path | None = None) -> Iterator[dict[str, Any]]:
    return jsonl.read(path or feedback_path(), since_s=since_s)


def stats(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per model and per (model, source): completions shown, accepted, partially accepted,
    dismissed, the acceptance rate ((accepted + partial) / shown) and the accepted share of
    the characters shown. A completion the editor accepted or dismissed was shown, whether
    or not the editor reported "shown"; its last event decides its outcome."""
    by_id: dict[str, dict[str, Any]] = {}
    for record in records:
        cid = str(record.get("id"))
        entry = by_id.setdefault(cid, {"record": record, "outcome": "shown", "accepted_length": 0})
        event = record.get("event")
        if event in ("accepted", "partial", "dismissed"):
            entry["outcome"] = event
            entry["accepted_length"] = int(record.get("accepted_length") or 0)
            entry["record"] = record

    def summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
        shown = len(entries)
        outcomes = {
            name: sum(1 for e in entries if e["outcome"] == name) for name in ("accepted", "partial", "dismissed")
        }
        chars = sum(int(e["record"].get("length") or 0) for e in entries)
        kept = sum(e["accepted_length"] for e in entries)
        latencies = sorted(float(e["record"].get("latency_ms") or 0) for e in entries)
        return {
            "shown": shown,
            **outcomes,
            "acceptance_rate": round((outcomes["accepted"] + outcomes["partial"]) / shown, 3) if shown else None,
            "accepted_chars_share": round(kept / chars, 3) if chars else None,
            "latency_p50_ms": latencies[len(latencies) // 2] if latencies else None,
        }

    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for entry in by_id.values():
        record = entry["record"]
        groups[str(record.get("model"))][str(record.get("source"))].append(entry)
    return {
        "completions": len(by_id),
        "models": {
            model: {
                **summary([e for entries in sources.values() for e in entries]),
                "sources": {source: summary(entries) for source, entries in sorted(sources.items())},
            }
            for model, sources in sorted(groups.items())
        },
    }


def format_stats(data: dict[str, Any]) -> str:
    if not data["completions"]:
        return "no autocomplete feedback recorded yet\n"
    header = f"{'model':<24} {'source':<12} {'shown':>6} {'accepted':>8} {'partial':>8} {'dismissed':>9} {'rate':>6}"
    lines = [header, "-" * len(header)]

    def row(model: str, source: str, s: dict[str, Any]) -> str:
        rate = "-" if s["acceptance_rate"] is None else f"{s['acceptance_rate']:.0%}"
        return (
            f"{model:<24} {source:<12} {s['shown']:>6} {s['accepted']:>8} {s['partial']:>8} "
            f"{s['dismissed']:>9} {rate:>6}"
        )

    for model, summary in data["models"].items():
        lines.append(row(model, "(all)", summary))
        for source, source_summary in summary["sources"].items():
            lines.append(row("", source, source_summary))
    lines.append(f"{data['completions']} completions with feedback (rate = (accepted + partial) / shown)")
    return "\n".join(lines) + "\n"
