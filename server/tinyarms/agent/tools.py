"""The agent's built-in tools: list, read, search, edit, and (when allowed) run.

Each tool is a name, a description and a JSON schema for its arguments (what the model
is shown, in either wire format) plus a handler. A handler returns text for the model or
raises `ToolError`, whose message goes back to the model as the result so it can fix
its call. Every path goes through `Workspace.resolve` first; nothing here opens a path
the model named without it.

Edits go through `tinyarms.edits` like every other edit: the parse check refuses an edit
that breaks a file that parsed, and an edit of a file that changed since the run last
read it is refused as stale (the model must read it again). Results are capped at
`agent.output_cap_bytes` (16 kB by default) so one tool call cannot flood the context.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shlex
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from attrs import define, field

from tinyarms.agent.checkpoints import Checkpoint
from tinyarms.agent.files import Files, decode
from tinyarms.agent.workspace import ToolError, Workspace
from tinyarms.config.schema import Agent as AgentSettings

MAX_LIST = 400  # paths list_files returns
MAX_MATCHES = 100  # lines search returns
MAX_READ_LINES = 400  # lines read_file returns without a range


@define
class PermissionRequest:
    """What the agent is about to do, for a front door to ask the user about."""

    kind: str  # "write" | "command" | "sensitive" | "mcp"
    title: str  # one line: "Edit src/app.py", "Run pytest -q"
    path: str | None = None
    diff: str | None = None
    old_text: str | None = None
    new_text: str | None = None


Ask = Callable[[PermissionRequest], Awaitable[bool]]


async def allow_all(request: PermissionRequest) -> bool:
    return True


@define
class Change:
    """One file the run changed: the text before its first write, and now."""

    path: Path
    before: str | None  # None: the run created it
    after: str


@define
class ToolContext:
    workspace: Workspace
    files: Files
    settings: AgentSettings
    checkpoint: Checkpoint = field(factory=Checkpoint)
    ask: Ask = allow_all
    ask_sensitive: Ask | None = None  # None: sensitive files are refused outright
    read_hashes: dict[Path, str] = field(factory=dict)  # what the run last saw of each file
    changes: dict[Path, Change] = field(factory=dict)
    stop: threading.Event = field(factory=threading.Event)  # set on cancel: threads stop early
    allow_writes: bool = True

    def cap(self, text: str) -> str:
        limit = self.settings.output_cap_bytes
        data = text.encode("utf-8")
        if len(data) <= limit:
            return text
        cut = data[:limit].decode("utf-8", "ignore")
        return f"{cut}\n[output cut at {limit} bytes of {len(data)}]"

    async def resolve(self, raw: Any, *, reading: bool = True) -> Path:
        path = self.workspace.resolve(raw)
        why = self.workspace.sensitive(path)
        if why:
            granted = False
            if self.ask_sensitive is not None:
                verb = "Read" if reading else "Write"
                granted = await self.ask_sensitive(
                    PermissionRequest(kind="sensitive", title=f"{verb} {self.workspace.relative(path)}", path=str(path))
                )
            if not granted:
                raise ToolError(f"refused: {why}; it is not read or written without the user's permission")
        return path


Handler = Callable[[ToolContext, dict[str, Any]], Awaitable[str]]


@define
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    handler: Handler
    writes: bool = False


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- walking the workspace, .gitignore respected -------------------------------------------


def _ignore_spec(folder: Path) -> Any:
    import pathspec

    try:
        lines = (folder / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


def walk(workspace: Workspace, start: Path, stop: threading.Event) -> Iterator[Path]:
    """Files under `start`, skipping .git and anything a .gitignore on the way ignores.
    Symlinks are not followed (a link out of the workspace would lead the walk out)."""
    specs: list[tuple[Path, Any]] = []
    root = workspace.root_of(start) or workspace.primary
    folder = start
    while True:  # .gitignore files from the root down to `start` apply too
        spec = _ignore_spec(folder)
        if spec is not None:
            specs.append((folder, spec))
        if folder == root or folder.parent == folder:
            break
        folder = folder.parent

    def ignored(path: Path, is_dir: bool) -> bool:
        for base, spec in specs:
            if base == path or base not in path.parents:
                continue
            rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
            if spec.match_file(rel):
                return True
        return False

    for current, dirs, names in os.walk(start, followlinks=False):
        if stop.is_set():
            return
        here = Path(current)
        if here != start:
            spec = _ignore_spec(here)
            if spec is not None:
                specs.append((here, spec))
        dirs[:] = sorted(d for d in dirs if d != ".git" and not ignored(here / d, True))
        for name in sorted(names):
            path = here / name
            if not ignored(path, False) and not path.is_symlink():
                yield path


# -- the tools ------------------------------------------------------------------------------


async def list_files(ctx: ToolContext, args: dict[str, Any]) -> str:
    start = ctx.workspace.resolve(args.get("path") or ".")
    if not start.is_dir():
        raise ToolError(f"{args.get('path')!r} is not a directory")
    pattern = args.get("glob")

    def collect() -> list[str]:
        found: list[str] = []
        for path in walk(ctx.workspace, start, ctx.stop):
            rel = ctx.workspace.relative(path)
            if pattern and not (Path(rel).match(pattern) or path.match(pattern)):
                continue
            found.append(rel)
            if len(found) > MAX_LIST:
                break
        return found

    found = await asyncio.to_thread(collect)
    if not found:
        return "no files"
    more = "\n[more files not listed; narrow with path or glob]" if len(found) > MAX_LIST else ""
    return ctx.cap("\n".join(found[:MAX_LIST]) + more)


async def read_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    path = await ctx.resolve(args.get("path"))
    text = await ctx.files.read(path)
    ctx.read_hashes[path] = _digest(text)
    lines = text.splitlines()
    start = int(args.get("start_line") or 1)
    end = int(args.get("end_line") or min(len(lines), start + MAX_READ_LINES - 1))
    if start < 1 or end < start - 1:
        raise ToolError(f"bad line range {start}-{end}; lines are numbered from 1")
    shown = lines[start - 1 : end]
    width = len(str(end))
    body = "\n".join(f"{n:>{width}}| {line}" for n, line in enumerate(shown, start))
    note = f"[{ctx.workspace.relative(path)}: lines {start}-{start + len(shown) - 1} of {len(lines)}]"
    return ctx.cap(f"{note}\n{body}" if shown else f"{note}\n(empty)")


async def search(ctx: ToolContext, args: dict[str, Any]) -> str:
    query = args.get("query")
    if not isinstance(query, str) or not query:
        raise ToolError("search needs a non-empty query")
    if args.get("regex"):
        try:
            pattern = re.compile(query)
        except re.error as exc:
            raise ToolError(f"bad regular expression: {exc}") from None
    else:
        pattern = re.compile(re.escape(query), re.IGNORECASE)
    start = ctx.workspace.resolve(args.get("path") or ".")

    def scan() -> list[str]:
        hits: list[str] = []
        paths = [start] if start.is_file() else walk(ctx.workspace, start, ctx.stop)
        for path in paths:
            if ctx.workspace.sensitive(path):
                continue
            try:
                text = decode(path, path.read_bytes())
            except (ToolError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if pattern.search(line):
                    hits.append(f"{ctx.workspace.relative(path)}:{number}: {line.strip()[:200]}")
                    if len(hits) >= MAX_MATCHES:
                        return hits
        return hits

    hits = await asyncio.to_thread(scan)
    if not hits:
        return "no matches"
    more = f"\n[stopped at {MAX_MATCHES} matches]" if len(hits) >= MAX_MATCHES else ""
    return ctx.cap("\n".join(hits) + more)


async def edit_file(ctx: ToolContext, args: dict[str, Any]) -> str:
    from tinyarms.edits import check, diff

    if not ctx.allow_writes:
        raise ToolError("this session is in ask mode: files are not changed (switch to agent mode to edit)")
    path = await ctx.resolve(args.get("path"), reading=False)
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("edit_file needs 'content' (the new text)")
    start, end = args.get("start_line"), args.get("end_line")
    exists = path in ctx.read_hashes or await ctx.files.snapshot(path) is not None
    old: str | None = None
    if exists:
        old = await ctx.files.read(path)
        seen = ctx.read_hashes.get(path)
        if seen is None:
            raise ToolError(f"read {ctx.workspace.relative(path)} with read_file before editing it")
        if seen != _digest(old):
            raise ToolError(f"{ctx.workspace.relative(path)} changed since you read it; read it again")
    if start is None and end is None:
        new = content
    elif old is None:
        if int(start or 1) != 1:
            raise ToolError(f"{ctx.workspace.relative(path)} does not exist; omit the line range to create it")
        new = content  # a range from line 1 of a file that does not exist yet: the new file
    else:
        lines = old.splitlines(keepends=True)
        first, last = int(start or 1), int(end if end is not None else start or 1)
        last = min(last, len(lines))  # past the end means "to the end"
        if first < 1 or first > len(lines) + 1 or last < first - 1:
            raise ToolError(f"line range {first}-{last} is outside the file (it has {len(lines)} lines)")
        newline = "\r\n" if old.count("\r\n") * 2 > old.count("\n") else "\n"
        replacement = content
        ended = last < len(lines) or (last >= 1 and lines[last - 1].endswith("\n"))
        if replacement and not replacement.endswith(("\n", "\r")) and ended:
            replacement += newline  # the line after the range stays on its own line
        new = "".join(lines[: first - 1]) + replacement + "".join(lines[last:])
    rel = ctx.workspace.relative(path)
    refused = check.refusal(str(path), old or "", new)  # a new file must parse too
    if refused:
        raise ToolError(f"edit refused: {refused}")
    shown = diff.unified(rel, old or "", new)
    granted = await ctx.ask(
        PermissionRequest(
            kind="write", title=f"{'Edit' if old is not None else 'Create'} {rel}", path=str(path), diff=shown,
            old_text=old, new_text=new,
        )  # fmt: skip
    )
    if not granted:
        raise ToolError(f"the user did not allow writing {rel}")
    await ctx.checkpoint.before_write(ctx.files, path)
    await ctx.files.write(path, old, new)
    ctx.read_hashes[path] = _digest(new)
    before = ctx.changes[path].before if path in ctx.changes else old
    ctx.changes[path] = Change(path, before, new)
    return f"{'edited' if old is not None else 'created'} {rel}\n{ctx.cap(shown)}"


def _allowed(argv: list[str], allowed: list[str]) -> bool:
    for entry in allowed:
        words = shlex.split(entry)
        if words and argv[: len(words)] == words:
            return True
    return False


async def run_command(ctx: ToolContext, args: dict[str, Any]) -> str:
    raw = args.get("command")
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError("run_command needs 'command', e.g. \"pytest -q\"")
    try:
        argv = shlex.split(raw)
    except ValueError as exc:
        raise ToolError(f"cannot split the command: {exc}") from None
    settings = ctx.settings
    if not settings.allow_commands:
        raise ToolError("running commands is not allowed (agent.allow_commands is false)")
    if not _allowed(argv, settings.commands):
        listed = ", ".join(settings.commands) or "none"
        raise ToolError(f"{argv[0]!r} is not on the allow-list (agent.commands: {listed})")
    if not await ctx.ask(PermissionRequest(kind="command", title=f"Run {shlex.join(argv)}")):
        raise ToolError(f"the user did not allow running {shlex.join(argv)}")
    return ctx.cap(await execute(argv, ctx.workspace.primary, settings.command_timeout_s, settings.output_cap_bytes))


async def execute(argv: list[str], cwd: Path, timeout: float, cap: int) -> str:
    """Run argv (no shell) in its own process group; kill the group on timeout or cancel."""
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise ToolError(f"cannot run {argv[0]!r}: {exc.strerror}") from None
    output = bytearray()

    async def read() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            if len(output) < cap:
                output.extend(chunk[: cap - len(output)])

    try:
        await asyncio.wait_for(asyncio.gather(read(), proc.wait()), timeout)
        status = f"exit code {proc.returncode}"
    except TimeoutError:
        _kill(proc)
        await proc.wait()
        status = f"killed after {timeout:g}s (agent.command_timeout_s)"
    except asyncio.CancelledError:
        _kill(proc)
        raise
    elapsed = time.monotonic() - started
    text = output.decode("utf-8", "replace")
    return f"$ {shlex.join(argv)}\n{text}\n[{status}, {elapsed:.1f}s]"


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


PATH = {"type": "string", "description": "a path relative to the workspace root"}

BUILTIN: tuple[Tool, ...] = (
    Tool(
        "list_files",
        "List the files under a folder of the workspace (.gitignore respected).",
        _schema({"path": {**PATH, "description": "a folder; default the workspace root"},
                 "glob": {"type": "string", "description": "only paths matching this glob, e.g. *.py"}}, []),
        list_files,
    ),  # fmt: skip
    Tool(
        "read_file",
        "Read a text file, with line numbers. Read a file before you edit it.",
        _schema({"path": PATH, "start_line": {"type": "integer", "minimum": 1},
                 "end_line": {"type": "integer", "minimum": 1}}, ["path"]),
        read_file,
    ),  # fmt: skip
    Tool(
        "search",
        "Search the workspace's files for text (case-insensitive) or a regular expression.",
        _schema({"query": {"type": "string"}, "regex": {"type": "boolean"},
                 "path": {**PATH, "description": "a folder or file to search; default everything"}}, ["query"]),
        search,
    ),  # fmt: skip
    Tool(
        "edit_file",
        "Replace lines start_line..end_line (inclusive, from read_file's numbers) of a file with content; "
        "without a range, content is the whole file (this creates a new file).",
        _schema({"path": PATH, "content": {"type": "string"}, "start_line": {"type": "integer", "minimum": 1},
                 "end_line": {"type": "integer", "minimum": 0}}, ["path", "content"]),
        edit_file,
        writes=True,
    ),  # fmt: skip
)

RUN_COMMAND = Tool(
    "run_command",
    "Run one allowed command (no shell) in the workspace root and see its output.",
    _schema({"command": {"type": "string", "description": "e.g. pytest -q tests/test_app.py"}}, ["command"]),
    run_command,
    writes=True,
)


def builtin_tools(settings: AgentSettings, *, writes: bool = True) -> list[Tool]:
    """The built-in tools this run may offer: run_command only when config allows it,
    and no writing tools in a read-only (ask mode) run."""
    tools = [t for t in BUILTIN if writes or not t.writes]
    if writes and settings.allow_commands and settings.commands:
        tools.append(RUN_COMMAND)
    return tools
