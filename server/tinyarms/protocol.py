"""tinyarms' own additions to LSP, in one place: command names and notifications.

The editors (vscode-client/, the Neovim config in tinyarms/nvim/) use these names, so
they are a public interface: add to them, do not rename them.

workspace/executeCommand (arguments are one JSON object unless noted):

- ``tinyarms.showConfig`` ``()``: the effective config with the source of every value,
  the problems, trust and ``using_last_good``.
- ``tinyarms.route`` ``({"text"})``: the router's decision (``Decision.to_dict()``), no model call.
- ``tinyarms.ask`` ``({"text", "role"?, "tier"?, "uri"?, "range"?, "stream_id"?})``: route
  (unless ``role`` is given or the text starts with a slash command), run the role's tier
  chain and return ``{"text", "decision", "trace"}``. While it runs, the answer streams
  as ``tinyarms/stream`` notifications carrying the same ``stream_id``.
- ``tinyarms.status`` ``()``: tiers, models, the last completion and the last decision.
- ``tinyarms.toggleAutocomplete`` ``({"enabled"?})``: turn inline completion off or on for
  this session (``enabled`` is true or false; anything else is an "invalid params" error;
  absent toggles); returns ``{"enabled"}``.

Errors: a request whose params do not fit their LSP type, or a command argument of the wrong
shape, gets JSON-RPC error -32602 with a one-line message naming the field; any other failure
-32603 with one line (the traceback goes to the server log, never to the client). A message
with an unreadable body or header, or longer than 64 MiB, gets an error with id null.

Server to client notifications:

- ``tinyarms/status``: ``{"kind": "completion", "tier", "model", "elapsed_ms"}`` after a
  completion, or ``{"kind": "decision", "route", "role", "tier", "elapsed_ms", "cost_usd"?}``
  after a routed request. Status bars show it.
- ``tinyarms/stream``: ``{"stream_id", "delta"}``, a piece of an answer in flight; a
  ``{"stream_id", "restart": true, "reason"}`` tells the client to clear what it showed
  (a fallback tier starts the answer again).
"""

from __future__ import annotations

SHOW_CONFIG = "tinyarms.showConfig"
ROUTE = "tinyarms.route"
ASK = "tinyarms.ask"
STATUS = "tinyarms.status"
TOGGLE_AUTOCOMPLETE = "tinyarms.toggleAutocomplete"

STATUS_NOTIFICATION = "tinyarms/status"
STREAM_NOTIFICATION = "tinyarms/stream"
