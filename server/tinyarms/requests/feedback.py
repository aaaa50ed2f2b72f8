"""What the user said about an answer, into the decision trace: the signal the router learns from.

`tinyarms.feedback {trace_id?, rating?, route?, outcome?}` (protocol.py) names a request by its
trace id (the `id` of the `trace` a request returned; omitted: this session's last request) and
records one `{"kind": "feedback", ...}` line in the trace: a rating (`up` / `down`), an outcome
(`accepted` / `rejected` for an edit, `stronger` / `reask_stronger` for "try a stronger tier"), a route correction
("this was a fix": a route name, or `none` for no route). The trace never holds request text, so
a route correction also goes to the corrections file (router/corrections.py) with the request's
text, which this process remembers for its last `RECENT` requests. `tinyarms router fit
--from-log` reads both; a thumbs-down, a rejected edit or a stronger re-ask marks the cheap
tier's answer as not good enough for the difficulty model.

`tinyarms.reask` ("try a stronger tier", requests/reask.py) answers a remembered request again on
a stronger tier and records `outcome = "reask_stronger"` here, so this process also remembers
the messages each answer was given and the tier that answered.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from attrs import define

from tinyarms.router import corrections
from tinyarms.router.classifier import NONE
from tinyarms.tiers import trace

if TYPE_CHECKING:
    from tinyarms.config import Config
    from tinyarms.router.decision import Decision

RECENT = 200
RATINGS = ("up", "down")
REASK = "reask_stronger"  # the outcome tinyarms.reask records on the request it answered again
OUTCOMES = ("accepted", "rejected", "stronger", REASK)


class FeedbackError(ValueError):
    """The feedback names nothing this process knows, or a value out of range; nothing was written."""


@define
class Remembered:
    text: str
    route: str | None
    role: str
    decision: Decision | None = None
    messages: list[dict[str, Any]] | None = None  # what the model was given (a re-ask sends it again)
    tier: str | None = None  # the tier that answered


class RecentRequests:
    """trace id -> the request's text and decision, for this process's last RECENT requests (in memory only)."""

    def __init__(self, size: int = RECENT) -> None:
        self.size = size
        self._items: OrderedDict[str, Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def remember(
        self, trace_id: str, text: str, decision: Decision, *, messages: list[dict[str, Any]] | None = None,
        tier: str | None = None,
    ) -> None:  # fmt: skip
        with self._lock:
            self._items[trace_id] = Remembered(text, decision.route, decision.role, decision, messages, tier)
            self._items.move_to_end(trace_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, trace_id: str | None) -> tuple[str, Remembered] | None:
        with self._lock:
            if trace_id is None:
                return next(reversed(self._items.items()), None)
            found = self._items.get(trace_id)
            return (trace_id, found) if found is not None else None


def record(
    config: Config, recent: RecentRequests, *, trace_id: str | None, rating: str | None = None,
    route: str | None = None, outcome: str | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write the feedback; returns `{"recorded": true, "trace_id", "correction": bool}`."""
    if rating is None and route is None and outcome is None:
        raise FeedbackError("feedback needs at least one of rating, route, outcome")
    if rating is not None and rating not in RATINGS:
        raise FeedbackError(f"rating must be one of {', '.join(RATINGS)}, got {rating!r}")
    if outcome is not None and outcome not in OUTCOMES:
        raise FeedbackError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if route is not None and route != NONE and route not in config.routes:
        raise FeedbackError(f"unknown route '{route}' (routes: {', '.join(sorted(config.routes))}, or none)")
    found = recent.get(trace_id)
    if route is not None and found is None:
        which = f"request {trace_id}" if trace_id else "a request in this session"
        raise FeedbackError(f"a route correction needs the request's text, and {which} is not remembered here")
    if found is None and trace_id is None:
        raise FeedbackError("no request in this session yet: name one with trace_id")
    target = found[0] if found is not None else trace_id
    line: dict[str, Any] = {"ts": round(time.time(), 3), "kind": "feedback", "trace_id": target}
    if found is not None:
        line["role"], line["from_route"] = found[1].role, found[1].route
    for key, value in (("rating", rating), ("outcome", outcome), ("route", route)):
        if value is not None:
            line[key] = value
    line.update(extra or {})
    trace.append(line)
    if route is not None and found is not None:
        corrections.append(None if route == NONE else route, found[1].text, target)
    return {"recorded": True, "trace_id": target, "correction": route is not None}
