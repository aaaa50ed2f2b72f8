"""tinyarms' own additions to LSP, in one place: command names and notifications.

The editors (vscode-client/, the Neovim config in tinyarms/nvim/) use these names, so
they are a public interface: add to them, do not rename them.

workspace/executeCommand (arguments are one JSON object unless noted; the attrs classes
below are the argument shapes, and an argument of the wrong shape is a JSON-RPC
InvalidParams error naming the field, e.g. ``tinyarms.ask: invalid value for type,
expected str @ $.text``):

- ``tinyarms.showConfig`` ``()``: the effective config with the source of every value,
  the problems, trust and ``using_last_good``.
- ``tinyarms.route`` ``({"text"})``: the decision ``tinyarms.ask`` would take
  (``Decision.to_dict()``), no model call; a router that cannot load gives the
  ``fallback`` decision that says why.
- ``tinyarms.ask`` ``({"text", "role"?, "tier"?, "uri"?, "range"?, "stream_id"?})``: route
  (unless ``role`` is given or the text starts with a slash command), run the role's tier
  chain and return ``{"text", "decision", "trace"}``; a router that cannot load answers
  through ``router.fallback_role`` (decision stage ``fallback``, with the reason). While it runs, the answer streams
  as ``tinyarms/stream`` notifications carrying the same ``stream_id``.
- ``tinyarms.status`` ``()``: tiers, models, the last completion and the last decision.
- ``tinyarms.toggleAutocomplete`` ``({"enabled"?})``: turn inline completion off or on for
  this session; returns ``{"enabled"}``.
- ``tinyarms.autocomplete.feedback`` ``({"id", "event", "accepted_length"?})``: what the user
  did with a completion. ``event`` is ``"shown"``, ``"accepted"``, ``"partial"`` (with
  ``accepted_length``, characters of the suggestion kept) or ``"dismissed"``. Every inline
  completion item (and every ``textDocument/completion`` item) carries ``command`` = this
  command with ``{"id", "event": "accepted"}``; the editor sends the other events itself.
  Returns ``{"recorded": bool, "reason"?}`` (an unknown or expired id is not an error:
  ``recorded`` is false); a wrong shape is a JSON-RPC InvalidParams error naming the field.

Server to client notifications:

- ``tinyarms/status``: ``{"kind": "completion", "tier", "model", "elapsed_ms"}`` after a
  completion, or ``{"kind": "decision", "route", "role", "tier", "elapsed_ms", "cost_usd"?}``
  after a routed request. Status bars show it.
- ``tinyarms/stream``: ``{"stream_id", "delta"}``, a piece of an answer in flight; a
  ``{"stream_id", "restart": true, "reason"}`` tells the client to clear what it showed
  (a fallback tier starts the answer again).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import cattrs
from attrs import define
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

SHOW_CONFIG = "tinyarms.showConfig"
ROUTE = "tinyarms.route"
ASK = "tinyarms.ask"
STATUS = "tinyarms.status"
TOGGLE_AUTOCOMPLETE = "tinyarms.toggleAutocomplete"
CRASH_MODEL = "tinyarms.test.crashModel"  # tests only: offered with TINYARMS_ALLOW_CRASH=1; -> {"crashed", "error"?}
AUTOCOMPLETE_FEEDBACK = "tinyarms.autocomplete.feedback"

STATUS_NOTIFICATION = "tinyarms/status"
STREAM_NOTIFICATION = "tinyarms/stream"


# -- command arguments -----------------------------------------------------------------------


@define(kw_only=True)
class RouteArgs:
    text: str


@define(kw_only=True)
class AskArgs:
    text: str
    role: str | None = None  # chat | edit | agent: skip routing
    tier: str | None = None  # start on this tier
    uri: str | None = None  # with range: the selected code is sent along
    range: types.Range | None = None
    stream_id: str | None = None  # tinyarms/stream notifications carry it


@define(kw_only=True)
class ToggleArgs:
    enabled: bool | None = None  # None: flip


@define(kw_only=True)
class FeedbackArgs:
    id: str  # the completion's id, from its item's command
    event: Literal["shown", "accepted", "partial", "dismissed"]
    accepted_length: int | None = None  # with "partial": characters of the suggestion kept


Shape = TypeVar("Shape")


def _exact(kind: type) -> Any:
    """JSON types as they are: no str(5) -> "5", no bool("no") -> True."""

    def structure(value: Any, _: Any) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


_converter = cattrs.Converter()
for _kind in (str, bool, int):
    _converter.register_structure_hook(_kind, _exact(_kind))


def arguments(command: str, args: tuple[Any, ...], shape: type[Shape]) -> Shape:
    """executeCommand arguments (one JSON object; some clients nest it in a list) as `shape`."""
    value: Any = args[0] if args else {}
    while isinstance(value, list) and value:
        value = value[0]
    if value == []:
        value = {}
    if not isinstance(value, dict):
        raise JsonRpcInvalidParams(f"{command}: expected one JSON object as the argument, got {type(value).__name__}")
    try:
        return _converter.structure(value, shape)
    except cattrs.BaseValidationError as exc:
        raise JsonRpcInvalidParams(f"{command}: " + "; ".join(cattrs.transform_error(exc))) from None
