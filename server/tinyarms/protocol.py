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
  chain and return ``{"text", "decision", "trace"}`` (``decision.strength``: the difficulty score,
  the threshold and whether it went straight to the strong tier; ``trace.id`` names it for
  ``tinyarms.feedback``); a router that cannot load answers
  through ``router.fallback_role`` (decision stage ``fallback``, with the reason). While it runs, the answer streams
  as ``tinyarms/stream`` notifications carrying the same ``stream_id``. ``uri`` must be a
  document open in the editor or a file inside a workspace folder (symlinks resolved);
  anything else is an "invalid params" error and nothing is read.
- ``tinyarms.feedback`` ``({"trace_id"?, "rating"?, "route"?, "outcome"?})``: what the user
  said about a request's answer, into the decision trace. ``trace_id``: the ``id`` of the
  ``trace`` a request returned (omitted: this session's last request); ``rating``: ``"up"`` |
  ``"down"``; ``outcome``: ``"accepted"`` | ``"rejected"`` (an edit), ``"stronger"`` or
  ``"reask_stronger"`` (the user asked a stronger tier); ``route``: a route correction, a route
  name or ``"none"`` (needs a request this server answered, for its text). At least one of them. Returns ``{"recorded":
  true, "trace_id", "correction"}``; an unknown route, rating or outcome, or a correction of
  a request this server does not remember, is InvalidParams and writes nothing.
  ``tinyarms router fit --from-log`` learns from these.
- ``tinyarms.reask`` ``({"trace_id"?, "tier"?, "stream_id"?})``: "try a stronger tier". The
  request that ``trace_id`` names (an answer of ``tinyarms.ask`` or ``tinyarms.chat`` from this
  process, its last 200; omitted: the last one) is answered again with the same messages on
  ``tier``, else the role's strong tier (``strong_tier``, else the first of ``escalate_to``), else
  the next tier of the chain after the one that answered; not routed again. Streams like
  ``tinyarms.ask``. Returns ``{"text", "decision", "trace", "reask_of"}`` (``reask_of``: the
  first request's trace id) and records ``{"kind": "feedback", "trace_id": <first>, "outcome":
  "reask_stronger", "reask_trace_id", "tier"}`` in the trace; ``router fit --from-log`` counts
  it against the cheap tier. A request not remembered, an unknown tier or no stronger tier
  is InvalidParams and writes nothing. The conversation of a chat answer is not rewritten.
- ``tinyarms.chat`` ``({"text", "conversation"?, "uri"?, "range"?, "workDoneToken"?, "stream_id"?})``:
  one turn of a conversation (a new one when ``conversation`` is absent or unknown; ids are
  1-64 of ``[A-Za-z0-9_-]``). Free text is routed, slash commands name the route; the routed
  role answers with the context (the selection or the file around the cursor, the
  diagnostics in the range, ``@path`` files inside the workspace, the rules file) and the
  earlier turns that fit ``roles.ROLE.context_tokens``. Returns ``{"text", "decision",
  "conversation", "usage": {"prompt_tokens", "completion_tokens", "total_tokens",
  "estimated"?}, "cost_usd", "context": [{"kind", "path"?, "tokens", "note"?, "turns"?}],
  "actions": [{"title", "command", "arguments"}], "note", "trace"}`` (``trace.id`` names the answer
  for ``tinyarms.feedback`` and ``tinyarms.reask``). ``decision`` is the routing
  decision with ``tier``, ``model``, ``elapsed_ms`` and ``cost_usd`` of the tier that
  answered (``routed_tier`` when a fallback answered). Context kinds: ``history``,
  ``rules``, ``selection``, ``file``, ``diagnostics``, ``mention``; a ``note`` says why a
  piece was cut or not sent (``@../x``: "refused: it is outside the workspace folders").
  ``note`` (top level) says when the oldest turns were left out. ``actions``: "Apply as an
  edit" (``tinyarms.edit`` with the answer) when the role is edit and a range was given,
  "Start the agent" (``tinyarms.agent {"goal", "uri"?, "range"?}``) when it is agent.
  Streams under ``workDoneToken`` as ``$/progress`` (begin: title and message
  ``tinyarms chat <conversation>``; each report's ``message`` is the next piece of the
  answer, or ``(restarted: why)``; end: the decision line) and, for a ``stream_id``, as
  ``tinyarms/stream`` notifications.
- ``tinyarms.chat.list`` ``({})``: ``{"conversations": [{"id", "title", "turns", "updated"}]}``,
  the most recently updated first (``updated`` in Unix seconds).
- ``tinyarms.chat.delete`` ``({"conversation"})``: ``{"deleted": bool}``.
- ``tinyarms.edit`` ``({"uri", "range", "instruction", "version", "preview"?, "answer"?})``: the
  edit role rewrites the range's whole lines (``/test`` writes tests into the project's test
  file instead). ``preview: true`` -> ``{"diff", "edit": WorkspaceEdit, "decision", "trace"}``,
  nothing applied; otherwise ``workspace/applyEdit`` labelled ``tinyarms: <instruction>`` ->
  ``{"applied": true, "decision", "diff", "trace"}``. ``trace`` is the model call's trace
  record (null when ``answer`` was given): an editor that accepts or rejects a preview sends
  ``tinyarms.feedback {"trace_id": trace.id, "outcome": "accepted" | "rejected"}``.
  Refused (the document is not at ``version``, the answer is empty, unchanged, words instead
  of code, or breaks the file's syntax, the editor cannot create the test file or did not
  apply the edit) -> ``{"applied": false, "refused": "<one sentence>", "decision"}``, nothing
  changed. ``answer``: apply this text (a chat answer) instead of asking the model; the same
  checks apply.
- ``tinyarms.agent`` ``({"goal", "uri"?, "range"?, "workDoneToken"?, "run"?})``: run the agent
  (features/agent.py) in the workspace folders; ``run`` is an optional client-chosen id. Each
  step is a ``$/progress`` report under ``workDoneToken`` (or a server-created token): the
  begin message is ``"run ID: GOAL"``, reports ``"step N on TIER: tool, tool (error)"``, the
  end is why it stopped; cancelling the progress cancels the run. Writes go through
  ``workspace/applyEdit``. Returns ``{"run", "report": {"goal", "steps": [{"index", "tier",
  "model", "route", "stage", "text", "tool_calls": [{"id", "name", "arguments", "ok",
  "result"}], "tokens", "cost_usd", "latency_ms"}], "files": [{"path", "diff", "created"}],
  "tokens", "cost_usd", "stopped", "stop", "answer"}}``. ``steps`` is a list (its length is
  the step count); ``stopped`` is one sentence; ``stop`` is one of done, steps, time, tokens,
  cost, malformed, cancelled, error.
- ``tinyarms.agent.cancel`` ``({"run"})``: stop that run within a second -> ``{"cancelled"}``
  (false when it had already ended).
- ``tinyarms.agent.undo`` ``({"run"})``: put back every file the run changed, byte for byte,
  and delete the files it created -> ``{"restored": [path], "deleted": [path]}`` (paths
  relative to the workspace; a second undo restores nothing).
- ``tinyarms.status`` ``()``: tiers, models, the last completion and the last decision.
- ``tinyarms.toggleAutocomplete`` ``({"enabled"?})``: turn inline completion off or on for
  this session (``enabled`` is true or false; anything else is an "invalid params" error;
  absent toggles); returns ``{"enabled"}``.
- ``tinyarms.autocomplete.feedback`` ``({"id", "event", "accepted_length"?})``: what the user
  did with a completion. ``event`` is ``"shown"``, ``"accepted"``, ``"partial"`` (with
  ``accepted_length``, characters of the suggestion kept) or ``"dismissed"``. Every inline
  completion item (and every ``textDocument/completion`` item) carries ``command`` = this
  command with ``{"id", "event": "accepted"}``; the editor sends the other events itself.
  Returns ``{"recorded": bool, "reason"?}`` (an unknown or expired id is not an error:
  ``recorded`` is false); a wrong shape is a JSON-RPC InvalidParams error naming the field.

Errors: a request whose params do not fit their LSP type, or a command argument of the wrong
shape, gets JSON-RPC error -32602 with a one-line message naming the field; any other failure
-32603 with one line (the traceback goes to the server log, never to the client). A message
with an unreadable body or header, or longer than 64 MiB, gets an error with id null.

Client to server notifications:

- ``tinyarms/cursorMoved`` ``({"textDocument": {"uri"}, "position": {"line", "character"}})``:
  the cursor of a document the server handles moved (``position`` in the negotiated
  position encoding, as in any LSP request). LSP has no such notification; autocomplete
  uses it to evaluate the prompt at the new place ahead (``roles.autocomplete.prefill_on_cursor``):
  the server waits for the cursor to settle (about 200 ms, so moving through a file line by
  line starts nothing), skips a place whose prompt the model has mostly evaluated already,
  and any keystroke pre-empts the work. Clients may send it on every move; no reply. A
  wrong shape is logged and ignored (a notification has no error reply).

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
from cattrs.strategies import configure_union_passthrough
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

SHOW_CONFIG = "tinyarms.showConfig"
ROUTE = "tinyarms.route"
ASK = "tinyarms.ask"
STATUS = "tinyarms.status"
FEEDBACK = "tinyarms.feedback"
REASK = "tinyarms.reask"
CHAT = "tinyarms.chat"
CHAT_LIST = "tinyarms.chat.list"
CHAT_DELETE = "tinyarms.chat.delete"
EDIT = "tinyarms.edit"
TOGGLE_AUTOCOMPLETE = "tinyarms.toggleAutocomplete"
AGENT = "tinyarms.agent"
AGENT_CANCEL = "tinyarms.agent.cancel"
AGENT_UNDO = "tinyarms.agent.undo"
CRASH_MODEL = "tinyarms.test.crashModel"  # tests only: offered with TINYARMS_ALLOW_CRASH=1; -> {"crashed", "error"?}
AUTOCOMPLETE_FEEDBACK = "tinyarms.autocomplete.feedback"

CURSOR_MOVED = "tinyarms/cursorMoved"  # client -> server, params CursorMovedParams
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
class AnswerFeedbackArgs:
    trace_id: str | None = None  # the request's trace id; None: this session's last request
    rating: str | None = None  # up | down
    route: str | None = None  # a route correction: a route name or "none"
    outcome: str | None = None  # accepted | rejected | stronger | reask_stronger


@define(kw_only=True)
class ReaskArgs:
    trace_id: str | None = None  # the answer to redo; None: this session's last request
    tier: str | None = None  # None: the role's strong tier (requests/reask.py)
    stream_id: str | None = None  # tinyarms/stream notifications carry it


@define(kw_only=True)
class ChatArgs:
    text: str
    conversation: str | None = None  # continue this conversation (new when absent or unknown)
    uri: str | None = None  # the document the question is about
    range: types.Range | None = None  # the selection (an empty range: the cursor)
    workDoneToken: str | int | None = None  # noqa: N815 - the LSP name; $/progress reports carry it
    stream_id: str | None = None  # tinyarms/stream notifications carry it


@define(kw_only=True)
class ChatListArgs:
    pass


@define(kw_only=True)
class ChatDeleteArgs:
    conversation: str


@define(kw_only=True)
class EditArgs:
    uri: str
    range: types.Range
    instruction: str
    version: int | None = None  # the document version the edit is for (None: the current one)
    preview: bool = False  # return the WorkspaceEdit instead of applying it
    answer: str | None = None  # apply this (a chat answer) instead of asking the model


@define(kw_only=True)
class ToggleArgs:
    enabled: bool | None = None  # None: flip


@define(kw_only=True)
class AgentArgs:
    goal: str
    uri: str | None = None  # with range: the selected code goes along with the goal
    range: types.Range | None = None
    workDoneToken: str | int | None = None  # noqa: N815 (the LSP field name)
    run: str | None = None  # a client-chosen run id


@define(kw_only=True)
class RunArgs:
    run: str


@define(kw_only=True)
class FeedbackArgs:
    id: str  # the completion's id, from its item's command
    event: Literal["shown", "accepted", "partial", "dismissed"]
    accepted_length: int | None = None  # with "partial": characters of the suggestion kept


@define(kw_only=True)
class DocumentRef:
    uri: str


@define(kw_only=True)
class CursorMovedParams:
    textDocument: DocumentRef  # noqa: N815 - the LSP name
    position: types.Position


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
# A ProgressToken (LSP: integer | string) is taken as it is.
configure_union_passthrough(str | int | None, _converter)


def _plain(value: Any) -> Any:
    """pygls hands a custom notification's params over as namedtuples: back to JSON values."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def notification_params(method: str, params: Any, shape: type[Shape]) -> Shape:
    """A custom notification's params as `shape`; JsonRpcInvalidParams naming the field
    otherwise (the caller logs it: a notification has no error reply)."""
    return arguments(method, (_plain(params),), shape)


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
