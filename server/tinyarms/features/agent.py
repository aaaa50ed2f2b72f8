"""The agent in any LSP editor: `tinyarms.agent`, `tinyarms.agent.cancel`, `tinyarms.agent.undo`.

A thin front door over `tinyarms.agent`: the workspace is the editor's folders, files are
read from open buffers (what the user sees, saved or not) and written through
`workspace/applyEdit`, so every change lands in the editor's buffers and its own undo
works too; only a client that cannot apply edits gets them on disk. A file in `.git/` or
a `.env*` file is read only when the user says yes to `window/showMessageRequest`.

Each step is a `$/progress` report under the client's `workDoneToken` (or a token the
server creates when the client supports that): the begin message names the run id, each
report says the step's tier and tool calls, the end says why the run stopped. The
progress is cancellable; cancelling it, or `tinyarms.agent.cancel {run}`, stops the run
within a second. Runs stay in memory for undo (the last 32).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from tinyarms import agent, protocol
from tinyarms.agent.files import read_disk, restore_disk, snapshot_disk, write_disk
from tinyarms.agent.workspace import ToolError
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.router.decision import Decision

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)

KEPT_RUNS = 32


class EditorFiles:
    """Reads open buffers, writes through workspace/applyEdit (disk when the client cannot)."""

    def __init__(self, server: LanguageServer) -> None:
        self.server = server
        self.written: dict[Path, str] = {}  # what the run wrote, until the editor shows it

    @property
    def _caps(self) -> types.ClientCapabilities | None:
        return self.server.client_capabilities

    def _can_apply(self) -> bool:
        workspace = self._caps.workspace if self._caps else None
        return bool(workspace and workspace.apply_edit)

    def _document(self, path: Path) -> Any:
        uri = path.as_uri()
        return self.server.workspace.text_documents.get(uri)

    async def read(self, path: Path) -> str:
        document = self._document(path)
        if document is not None:
            return str(document.source)
        if path in self.written:
            return self.written[path]
        return read_disk(path)

    async def snapshot(self, path: Path) -> bytes | None:
        document = self._document(path)
        if document is not None:
            return str(document.source).encode("utf-8")
        return snapshot_disk(path)

    async def write(self, path: Path, old: str | None, new: str) -> None:
        from tinyarms.edits import workspace as edit_workspace

        if not self._can_apply() or (old is None and not edit_workspace.can_create(self._caps)):
            write_disk(path, new)
            self.written.pop(path, None)
            return
        if old is None:
            edit = edit_workspace.new_file(path.as_uri(), new)
        else:
            document = self._document(path)
            version = document.version if document is not None else None
            edit = edit_workspace.document_edit(path.as_uri(), version, old, new, self._caps)
        await self._apply(edit, f"tinyarms agent: {path.name}")
        self.written[path] = new

    async def restore(self, path: Path, data: bytes | None) -> None:
        if not self._can_apply():
            restore_disk(path, data)
            return
        current = await self.read(path) if (self._document(path) or path.exists() or path in self.written) else None
        self.written.pop(path, None)
        if data is None:
            operations = self._caps.workspace.workspace_edit if self._caps and self._caps.workspace else None
            kinds = (operations.resource_operations or []) if operations else []
            if current is not None and types.ResourceOperationKind.Delete in kinds:
                delete = types.DeleteFile(uri=path.as_uri(), options=types.DeleteFileOptions(ignore_if_not_exists=True))
                await self._apply(types.WorkspaceEdit(document_changes=[delete]), "tinyarms agent: undo")
            restore_disk(path, None)  # gone from disk too, whatever the editor did
            return
        if current is None:
            restore_disk(path, data)
            return
        from tinyarms.edits import workspace as edit_workspace

        document = self._document(path)
        version = document.version if document is not None else None
        old_text = data.decode("utf-8", "surrogateescape")
        edit = edit_workspace.document_edit(path.as_uri(), version, current, old_text, self._caps)
        await self._apply(edit, "tinyarms agent: undo")
        if document is None:
            restore_disk(path, data)  # a file the editor does not show: put the bytes back as they were

    async def _apply(self, edit: types.WorkspaceEdit, label: str) -> None:
        result = await self.server.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label=label))
        if not result.applied:
            reason = result.failure_reason or "no reason given"
            raise ToolError(f"the editor did not apply the edit ({reason})")


class ProgressEvents(agent.Events):
    """Each step as a `$/progress` report."""

    def __init__(self, server: LanguageServer, token: str | int | None) -> None:
        self.server, self.token = server, token

    def _report(self, message: str) -> None:
        if self.token is None:
            return
        try:
            self.server.work_done_progress.report(self.token, types.WorkDoneProgressReport(message=message))
        except Exception:
            log.debug("progress report not sent", exc_info=True)

    def step_started(self, index: int) -> None:
        self._report(f"step {index}: asking the model")

    def step_finished(self, step: agent.StepRecord) -> None:
        calls = ", ".join(f"{c.name}{'' if c.ok else ' (error)'}" for c in step.tool_calls) or "no tool call"
        self._report(f"step {step.index} on {step.tier}: {calls}")


class AgentFeature(Feature):
    def __init__(self, server: LanguageServer, settings: Settings, status: Status) -> None:
        super().__init__(server, settings, status)
        self.runs: OrderedDict[str, agent.Run] = OrderedDict()
        self.files = EditorFiles(server)

    def shutdown(self) -> None:
        for run in self.runs.values():
            run.cancel()

    def _roots(self) -> list[Path]:
        folders = [to_fs_path(f.uri) for f in self.server.workspace.folders.values()]
        roots = [Path(p) for p in folders if p] or ([Path(self.server.workspace.root_path)]
                                                     if self.server.workspace.root_path else [])  # fmt: skip
        if not roots:
            raise ValueError("tinyarms.agent needs a workspace folder (open a folder in the editor)")
        return roots

    def _context(self, args: protocol.AgentArgs, workspace: agent.Workspace) -> str:
        if not (args.uri and args.range):
            return ""
        try:
            document = self.server.workspace.get_text_document(args.uri)
            start, end = args.range.start, args.range.end
            text = document.source[document.offset_at_position(start) : document.offset_at_position(end)]
            path = Path(to_fs_path(args.uri) or "")
            name = workspace.relative(path) if workspace.root_of(path) else path.name
        except (KeyError, TypeError, ValueError, OSError) as exc:
            log.warning("agent: could not read the selection of %s: %s", args.uri, exc)
            return ""
        return f"The user selected lines {start.line + 1}-{end.line + 1} of {name}:\n```\n{text}\n```" if text else ""

    async def _ask_sensitive(self, request: agent.PermissionRequest) -> bool:
        params = types.ShowMessageRequestParams(
            type=types.MessageType.Warning,
            message=f"tinyarms agent wants to {request.title[0].lower()}{request.title[1:]}. Allow it?",
            actions=[types.MessageActionItem("Allow"), types.MessageActionItem("Deny")],
        )
        try:
            answer = await self.server.window_show_message_request_async(params)
        except Exception:
            return False
        return bool(answer and answer.title == "Allow")

    async def run(self, args: protocol.AgentArgs) -> dict[str, Any]:
        if not args.goal.strip():
            raise JsonRpcInvalidParams("tinyarms.agent: the goal is empty")
        config = await self.settings.require()
        if args.run and args.run in self.runs:
            raise ValueError(f"run id {args.run!r} is already taken")
        workspace = agent.Workspace(self._roots())
        ctx = agent.ToolContext(workspace, self.files, config.agent, ask_sensitive=self._ask_sensitive)
        decision = Decision.explicit("agent", config.roles.agent.tier)
        token = await self._token(args.workDoneToken)
        run = agent.Run(
            config, args.goal, ctx, agent.builtin_tools(config.agent), run_id=args.run,
            context=self._context(args, workspace), decision=decision, events=ProgressEvents(self.server, token),
            mcp_servers=agent.from_config(config.agent),
        )  # fmt: skip
        self._keep(run)
        if token is not None:
            title = "tinyarms agent"
            begin = types.WorkDoneProgressBegin(title=title, message=f"run {run.id}: {args.goal}", cancellable=True)
            self.server.work_done_progress.begin(token, begin)
            future = self.server.work_done_progress.tokens.get(token)
            if future is not None:  # the client's Cancel button
                future.add_done_callback(lambda f: run.cancel() if f.cancelled() else None)
        report = await run.execute()
        if token is not None:
            self.server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=report.stopped))
        self.status.notify(
            "decision",
            {"route": decision.route, "role": "agent", "tier": report.steps[-1].tier if report.steps else decision.tier,
             "elapsed_ms": None, "cost_usd": report.cost_usd},
        )  # fmt: skip
        return {"run": run.id, "report": attrs.asdict(report)}

    async def _token(self, given: str | int | None) -> str | int | None:
        if given is not None:
            return given
        window = self.server.client_capabilities.window if self.server.client_capabilities else None
        if not (window and window.work_done_progress):
            return None
        token = f"tinyarms-agent-{uuid.uuid4().hex[:8]}"
        try:
            await self.server.work_done_progress.create_async(token)
        except Exception:
            return None
        return token

    def _keep(self, run: agent.Run) -> None:
        self.runs[run.id] = run
        while len(self.runs) > KEPT_RUNS:
            oldest = next(iter(self.runs))
            if self.runs[oldest].report is None:
                break  # still going
            del self.runs[oldest]

    def _find(self, args: protocol.RunArgs) -> agent.Run:
        run = self.runs.get(args.run)
        if run is None:
            known = ", ".join(self.runs) or "none"
            raise JsonRpcInvalidParams(f"no agent run {args.run!r} in this session (known: {known})")
        return run

    def cancel(self, args: protocol.RunArgs) -> dict[str, Any]:
        return {"cancelled": self._find(args).cancel()}

    async def undo(self, args: protocol.RunArgs) -> dict[str, Any]:
        run = self._find(args)
        if run.report is None:
            raise ValueError(f"agent run {run.id} is still going; cancel it first")
        restored, deleted = await run.ctx.checkpoint.undo(run.ctx.files)
        relative = run.ctx.workspace.relative
        return {"restored": [relative(p) for p in restored], "deleted": [relative(p) for p in deleted]}
