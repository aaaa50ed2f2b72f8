"""The ACP agent: every ACP method tinyarms answers, on the `agent-client-protocol` SDK.

`initialize` says what tinyarms can do (load saved sessions, embedded context, stdio MCP
servers). `session/new` takes the client's cwd as the workspace, loads the same layered
config with it (so workspace trust applies) and the client's `mcpServers`. `session/prompt`
runs the agent core (tinyarms.agent) and streams it: the model's text as
`agent_message_chunk`, each tool call as `tool_call` then `tool_call_update` (with a diff for
edits). Before each write, command or MCP call it asks `session/request_permission`, unless
the mode allows it (sessions.py). `session/cancel` stops the run within a second.
`session/set_mode` switches ask / agent / auto; `session/load` replays a saved session.
`/undo` as a prompt puts back every file the session's last run changed.

Files are read and written through the client (`fs/read_text_file`, `fs/write_text_file`)
when it offers them, so unsaved buffers are seen and edits land in the editor; else on disk.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import acp
from acp import schema
from acp.helpers import update_available_commands

from tinyarms import __version__, agent
from tinyarms.acp.sessions import MODES, Session
from tinyarms.agent.files import read_disk, restore_disk, snapshot_disk, write_disk
from tinyarms.agent.mcp import McpServerSpec
from tinyarms.agent.workspace import ToolError
from tinyarms.backends import ToolCall
from tinyarms.config import Config, ConfigInputs, load_best

log = logging.getLogger(__name__)

TOOL_KINDS: dict[str, schema.ToolKind] = {
    "list_files": "search", "search": "search", "read_file": "read", "edit_file": "edit", "run_command": "execute",
}  # fmt: skip
STOP_REASONS: dict[str, schema.StopReason] = {
    "done": "end_turn", "cancelled": "cancelled", "steps": "max_turn_requests", "tokens": "max_tokens",
}  # fmt: skip
PREVIEW = 2000  # characters of a tool's result shown in the client


class ClientFiles:
    """Reads and writes through the client's fs methods when offered; disk otherwise.
    Snapshots are the disk's bytes, so undo is exact whatever the buffer holds."""

    def __init__(self, conn: Any, session_id: str, caps: schema.ClientCapabilities | None) -> None:
        fs = caps.fs if caps else None
        self.conn, self.session_id = conn, session_id
        self.can_read = bool(fs and fs.read_text_file)
        self.can_write = bool(fs and fs.write_text_file)

    async def read(self, path: Path) -> str:
        if not self.can_read or not path.is_file():
            return read_disk(path)  # missing files and folders get the plain errors
        try:
            response = await self.conn.read_text_file(session_id=self.session_id, path=str(path))
        except acp.RequestError as exc:
            raise ToolError(f"the editor could not read {path.name}: {exc}") from None
        return str(response.content)

    async def write(self, path: Path, old: str | None, new: str) -> None:
        if not self.can_write:
            write_disk(path, new)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self.conn.write_text_file(session_id=self.session_id, path=str(path), content=new)
        except acp.RequestError as exc:
            raise ToolError(f"the editor could not write {path.name}: {exc}") from None

    async def snapshot(self, path: Path) -> bytes | None:
        return snapshot_disk(path)

    async def restore(self, path: Path, data: bytes | None) -> None:
        if data is not None and self.can_write:
            text = data.decode("utf-8", "surrogateescape")
            try:
                await self.conn.write_text_file(session_id=self.session_id, path=str(path), content=text)
            except acp.RequestError as exc:
                log.warning("the editor could not restore %s: %s", path, exc)
        restore_disk(path, data)  # and the exact bytes on disk


class Updates(agent.Events):
    """The run's events as ordered `session/update` notifications (sent by one task)."""

    def __init__(self, conn: Any, session: Session) -> None:
        self.conn, self.session = conn, session
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.sender = asyncio.ensure_future(self._send())
        self.current: str | None = None  # the tool call in progress
        self.calls = 0  # providers may reuse call ids across steps; the client needs them unique
        self.text_seen = False

    async def _send(self) -> None:
        while (update := await self.queue.get()) is not None:
            try:
                await self.conn.session_update(session_id=self.session.id, update=update)
            except Exception as exc:  # a client gone away: the run still ends and reports
                log.warning("session/update not sent: %s", exc)
            finally:
                self.queue.task_done()

    async def flush(self) -> None:
        """Wait until every update so far reached the client (a permission request follows its tool call)."""
        await self.queue.join()

    def send(self, update: Any) -> None:
        self.queue.put_nowait(update)

    async def close(self) -> None:
        self.queue.put_nowait(None)
        await self.sender

    def text(self, delta: str) -> None:
        self.text_seen = True
        self.send(acp.update_agent_message_text(delta))

    def restart(self, reason: str) -> None:
        self.send(acp.update_agent_message_text(f"\n\n[{reason}; starting the answer again]\n\n"))

    def step_started(self, index: int) -> None:
        if self.text_seen:
            self.send(acp.update_agent_message_text("\n\n"))
            self.text_seen = False

    def tool_started(self, call: ToolCall, tool: agent.Tool | None, arguments: Any) -> None:
        self.calls += 1
        self.current = f"{self.calls}-{call.id}"
        args = arguments if isinstance(arguments, dict) else {}
        path = args.get("path") if isinstance(args.get("path"), str) else None
        kind = TOOL_KINDS.get(call.name, "other")  # MCP tools: other
        title = _title(call.name, args)
        locations = [schema.ToolCallLocation(path=str(Path(self.session.cwd, path)))] if path else None
        self.send(acp.start_tool_call(self.current, title, kind=kind, status="in_progress", locations=locations,
                                      raw_input=arguments))  # fmt: skip

    def tool_finished(self, call: ToolCall, ok: bool, result: str, ctx: agent.ToolContext) -> None:
        content: list[Any] = []
        if ok and call.name == "edit_file":
            change = next(reversed(ctx.changes.values()), None)
            if change is not None:
                content.append(acp.tool_diff_content(str(change.path), change.after, change.before))
        content.append(acp.tool_content(acp.text_block(result[:PREVIEW])))
        self.send(acp.update_tool_call(self.current or call.id, status="completed" if ok else "failed", content=content,
                                       raw_output=result[:PREVIEW]))  # fmt: skip
        self.current = None


def _title(name: str, args: dict[str, Any]) -> str:
    if name == "read_file":
        return f"Read {args.get('path')}"
    if name == "edit_file":
        return f"Edit {args.get('path')}"
    if name == "search":
        return f"Search for {args.get('query')!r}"
    if name == "list_files":
        return f"List {args.get('path') or 'the workspace'}"
    if name == "run_command":
        return f"Run {args.get('command')}"
    return name.replace("__", ": ", 1)


def _prompt_text(blocks: list[Any]) -> tuple[str, str]:
    """(what the user asked, context the client attached: resources and links)."""
    asked: list[str] = []
    context: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            asked.append(block.text)
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if isinstance(text, str):
                context.append(f"The user attached {resource.uri}:\n```\n{text}\n```")
        elif kind == "resource_link":
            context.append(f"The user pointed at {block.uri}")
    return "\n".join(asked).strip(), "\n\n".join(context)


class TinyarmsAgent:
    """One connection's agent (the SDK calls these methods)."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.client_caps: schema.ClientCapabilities | None = None
        self.sessions: dict[str, Session] = {}

    def on_connect(self, conn: Any) -> None:
        self.conn = conn

    async def initialize(self, protocol_version: int, client_capabilities: Any = None, client_info: Any = None,
                         **kwargs: Any) -> schema.InitializeResponse:  # fmt: skip
        self.client_caps = client_capabilities
        return schema.InitializeResponse(
            protocol_version=acp.PROTOCOL_VERSION,
            agent_capabilities=schema.AgentCapabilities(
                load_session=True, prompt_capabilities=schema.PromptCapabilities(embedded_context=True)
            ),
            agent_info=schema.Implementation(name="tinyarms", title="tinyarms", version=__version__),
        )

    async def authenticate(self, method_id: str, **kwargs: Any) -> schema.AuthenticateResponse:
        return schema.AuthenticateResponse()

    def _modes(self, session: Session) -> schema.SessionModeState:
        modes = [schema.SessionMode(id=key, name=name, description=text) for key, (name, text) in MODES.items()]
        return schema.SessionModeState(current_mode_id=session.mode, available_modes=modes)

    def _open(self, session: Session, mcp_servers: list[Any] | None) -> None:
        specs = []
        for server in mcp_servers or []:
            if isinstance(server, schema.McpServerStdio):
                env = {item.name: item.value for item in server.env}
                specs.append(McpServerSpec(server.name, server.command, list(server.args), env))
            else:
                log.warning("MCP server %s: only stdio servers are supported", getattr(server, "name", "?"))
        session.mcp_servers = specs
        self.sessions[session.id] = session

    async def _announce(self, session: Session) -> None:
        """The slash commands a client may offer (sent after session/new answered, as agents do)."""
        command = schema.AvailableCommand(name="undo", description="Put back every file the last run changed")
        try:
            await self.conn.session_update(session_id=session.id, update=update_available_commands([command]))
        except Exception as exc:
            log.warning("available commands not sent: %s", exc)

    async def new_session(self, cwd: str, mcp_servers: list[Any] | None = None, **kwargs: Any
                          ) -> schema.NewSessionResponse:  # fmt: skip
        session = Session.new(_workspace(cwd))
        self._open(session, mcp_servers)
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._announce(session)))
        return schema.NewSessionResponse(session_id=session.id, modes=self._modes(session))

    async def load_session(self, cwd: str, session_id: str, mcp_servers: list[Any] | None = None, **kwargs: Any
                           ) -> schema.LoadSessionResponse:  # fmt: skip
        session = Session.load(session_id, _workspace(cwd))
        if session is None:
            raise acp.RequestError.resource_not_found(f"session {session_id}")
        self._open(session, mcp_servers)
        for turn in session.history:  # the conversation, replayed before the response
            text = acp.text_block(turn["content"])
            update = acp.update_user_message(text) if turn["role"] == "user" else acp.update_agent_message(text)
            await self.conn.session_update(session_id=session.id, update=update)
        await self._announce(session)
        return schema.LoadSessionResponse(modes=self._modes(session))

    async def set_session_mode(self, mode_id: str, session_id: str, **kwargs: Any) -> schema.SetSessionModeResponse:
        session = self._session(session_id)
        if mode_id not in MODES:
            raise acp.RequestError.invalid_params({"modeId": f"unknown mode {mode_id!r}; modes: {', '.join(MODES)}"})
        session.mode = mode_id
        session.save()
        return schema.SetSessionModeResponse()

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        session = self.sessions.get(session_id)
        if session is not None and session.running is not None:
            session.running.cancel()

    def _session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise acp.RequestError.invalid_params({"sessionId": f"no session {session_id!r}"})
        return session

    async def prompt(self, prompt: list[Any], session_id: str, **kwargs: Any) -> schema.PromptResponse:
        session = self._session(session_id)
        if session.running is not None:
            raise acp.RequestError.invalid_request({"sessionId": "a prompt is already running in this session"})
        goal, context = _prompt_text(prompt)
        if goal.strip() == "/undo":
            return await self._undo(session)
        config = _config(session.cwd)
        updates = Updates(self.conn, session)
        files = ClientFiles(self.conn, session.id, self.client_caps)
        writes = session.mode != "ask"
        ctx = agent.ToolContext(
            agent.Workspace([session.cwd]), files, config.agent, ask=self._asker(session, updates),
            ask_sensitive=self._asker(session, updates, remember=False), allow_writes=writes,
        )  # fmt: skip
        run = agent.Run(
            config, goal, ctx, agent.builtin_tools(config.agent, writes=writes), context=context, events=updates,
            history=session.history[-20:],
            mcp_servers=(agent.from_config(config.agent) + session.mcp_servers) if writes else [],
        )  # fmt: skip
        session.running = run
        try:
            report = await run.execute()
        finally:
            session.running = None
        if report.stop != "done":
            updates.send(acp.update_agent_message_text(f"\n\n[tinyarms: {report.stopped}]"))
        elif not report.answer:
            updates.send(acp.update_agent_message_text(f"[tinyarms: {report.stopped}]"))
        if report.files:
            listed = "\n".join(f"- {f.path}{' (new)' if f.created else ''}" for f in report.files)
            cost = f"${report.cost_usd:.4f}"
            totals = f"{len(report.steps)} steps, {report.tokens} tokens, {cost}; /undo puts them back"
            updates.send(acp.update_agent_message_text(f"\n\nChanged:\n{listed}\n({totals})"))
        await updates.close()
        session.runs = [*session.runs[-9:], run]
        session.history += [{"role": "user", "content": goal}, {"role": "assistant", "content": report.answer}]
        session.save()
        return schema.PromptResponse(stop_reason=STOP_REASONS.get(report.stop, "end_turn"))

    def _asker(self, session: Session, updates: Updates, *, remember: bool = True) -> agent.tools.Ask:
        async def ask(request: agent.PermissionRequest) -> bool:
            if remember and (session.mode == "auto" or request.kind in session.always):
                return True
            options = [schema.PermissionOption(option_id="allow", name="Allow", kind="allow_once")]
            if remember:
                options.append(schema.PermissionOption(option_id="always", name="Always allow", kind="allow_always"))
            options.append(schema.PermissionOption(option_id="reject", name="Reject", kind="reject_once"))
            content: list[Any] | None = None
            if request.kind == "write" and request.path is not None and request.new_text is not None:
                content = [acp.tool_diff_content(request.path, request.new_text, request.old_text)]
            tool_call = schema.ToolCallUpdate(
                tool_call_id=updates.current or "permission", title=request.title, status="pending", content=content
            )
            await updates.flush()
            response = await self.conn.request_permission(session_id=session.id, tool_call=tool_call, options=options)
            outcome = response.outcome
            chosen = getattr(outcome, "option_id", None) if getattr(outcome, "outcome", "") == "selected" else None
            if chosen == "always":
                session.always.add(request.kind)
            return chosen in ("allow", "always")

        return ask

    async def _undo(self, session: Session) -> schema.PromptResponse:
        run = session.runs.pop() if session.runs else None
        if run is None:
            text = "Nothing to undo in this session."
        else:
            restored, deleted = await run.ctx.checkpoint.undo(run.ctx.files)
            names = [run.ctx.workspace.relative(p) for p in restored] + [
                f"{run.ctx.workspace.relative(p)} (deleted)" for p in deleted
            ]
            text = "Put back: " + ", ".join(names) if names else "That run changed no file."
        await self.conn.session_update(session_id=session.id, update=acp.update_agent_message_text(text))
        return schema.PromptResponse(stop_reason="end_turn")


def _workspace(cwd: str) -> Path:
    path = Path(cwd)
    if not path.is_absolute() or not path.is_dir():
        raise acp.RequestError.invalid_params({"cwd": f"{cwd!r} is not an absolute path to a folder"})
    return path.resolve()


def _config(cwd: Path) -> Config:
    """The layered config with the session's folder as the workspace (trust applies)."""
    _, usable = load_best(ConfigInputs(workspace=cwd))
    for problem in usable.problems:
        log.warning("config: %s", problem)
    if usable.config is None:
        raise acp.RequestError.internal_error({"config": "; ".join(str(p) for p in usable.errors)})
    return usable.config


async def serve() -> None:
    await acp.run_agent(cast(Any, TinyarmsAgent()))  # the SDK's Protocol lists methods tinyarms leaves out
