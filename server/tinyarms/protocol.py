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
  this session; returns ``{"enabled"}``.

- ``tinyarms.agent`` ``({"goal", "uri"?, "range"?, "workDoneToken"?, "run"?})``: run the agent
  (features/agent.py) in the workspace folders; ``run`` is an optional client-chosen id. Each
  step is a ``$/progress`` report under ``workDoneToken`` (or a server-created token): the
  begin message is ``"run ID: GOAL"``, reports ``"step N on TIER: tool, tool (error)"``, the
  end is why it stopped. Writes go through ``workspace/applyEdit``. Returns
  ``{"run", "report": {"goal", "steps": [{"index", "tier", "model", "route", "stage", "text",
  "tool_calls": [{"id", "name", "arguments", "ok", "result"}], "tokens", "cost_usd",
  "latency_ms"}], "files": [{"path", "diff", "created"}], "tokens", "cost_usd", "stopped",
  "stop", "answer"}}``. ``steps`` is a list (its length is the step count); ``stopped`` is one
  sentence; ``stop`` is one of done, steps, time, tokens, cost, malformed, cancelled, error.
- ``tinyarms.agent.cancel`` ``({"run"})``: stop that run within a second -> ``{"cancelled"}``
  (false when it had already ended).
- ``tinyarms.agent.undo`` ``({"run"})``: put back every file the run changed, byte for byte,
  and delete the files it created -> ``{"restored": [path], "deleted": [path]}`` (paths
  relative to the workspace; a second undo restores nothing).

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
AGENT = "tinyarms.agent"
AGENT_CANCEL = "tinyarms.agent.cancel"
AGENT_UNDO = "tinyarms.agent.undo"

STATUS_NOTIFICATION = "tinyarms/status"
STREAM_NOTIFICATION = "tinyarms/stream"
