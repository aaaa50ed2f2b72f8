"""MCP servers' tools, offered to the agent beside its own (through the `mcp` SDK).

Servers come from `[agent.mcp_servers.NAME]` (command, args, and the *names* of env vars
to pass through; a workspace file can add one only in a trusted folder, see
config/loader.py) and from an ACP client's `session/new` `mcpServers`. Each is started over
stdio for the length of one run, with a minimal environment (the SDK's safe defaults
plus the named variables), in the workspace root. Its tools are named `SERVER__TOOL` (the
wire formats allow [A-Za-z0-9_-], 64 characters). A server that fails to start is
logged and left out; the run goes on with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from attrs import define, field

from tinyarms.agent.tools import PermissionRequest, Tool, ToolContext
from tinyarms.agent.workspace import ToolError
from tinyarms.config.schema import Agent as AgentSettings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0


@define
class McpServerSpec:
    name: str
    command: str
    args: list[str] = field(factory=list)
    env: dict[str, str] = field(factory=dict)  # values, resolved from the names in config


def from_config(settings: AgentSettings) -> list[McpServerSpec]:
    specs = []
    for name, server in settings.mcp_servers.items():
        if not server.enabled:
            continue
        env = {var: os.environ[var] for var in server.env if var in os.environ}
        for var in server.env:
            if var not in env:
                log.warning("MCP server %s: environment variable %s is not set", name, var)
        specs.append(McpServerSpec(name, server.command, list(server.args), env))
    return specs


def tool_name(server: str, tool: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}__{tool}")[:64]


def _text_of(result: Any) -> str:
    parts = []
    for item in result.content or []:
        text = getattr(item, "text", None)
        parts.append(text if isinstance(text, str) else f"[{getattr(item, 'type', 'content')}]")
    if not parts and getattr(result, "structuredContent", None) is not None:
        import json

        parts.append(json.dumps(result.structuredContent))
    return "\n".join(parts)


def _make_tool(server: str, session: Any, listed: Any) -> Tool:
    remote = listed.name
    schema = listed.inputSchema if isinstance(listed.inputSchema, dict) else {"type": "object"}

    async def handler(ctx: ToolContext, arguments: dict[str, Any]) -> str:
        if not await ctx.ask(PermissionRequest(kind="mcp", title=f"Call {remote} on MCP server {server}")):
            raise ToolError(f"the user did not allow calling {server}.{remote}")
        result = await session.call_tool(remote, arguments)
        text = _text_of(result)
        if result.isError:
            raise ToolError(f"{server}.{remote} failed: {text}")
        return ctx.cap(text or "(no output)")

    description = (listed.description or f"{remote} from MCP server {server}").strip()
    return Tool(tool_name(server, remote), f"[MCP {server}] {description}", schema, handler, writes=True)


@contextlib.asynccontextmanager
async def mcp_tools(specs: list[McpServerSpec], cwd: Path) -> AsyncIterator[list[Tool]]:
    """Start every server, yield their tools, stop them all on exit (same task throughout:
    the SDK's transports are anyio task groups)."""
    if not specs:
        yield []
        return
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import get_default_environment, stdio_client

    tools: list[Tool] = []
    async with contextlib.AsyncExitStack() as stack:
        for spec in specs:
            # PYTHONSAFEPATH: a Python server started as `python -m NAME` in the workspace does not put
            # the workspace first on sys.path, so a cloned repository cannot shadow its imports.
            env = {**get_default_environment(), "PYTHONSAFEPATH": "1", **spec.env}
            params = StdioServerParameters(command=spec.command, args=spec.args, env=env, cwd=str(cwd))
            try:
                read, write = await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
                session = await stack.enter_async_context(ClientSession(read, write))
                await asyncio.wait_for(session.initialize(), START_TIMEOUT_S)
                listed = await asyncio.wait_for(session.list_tools(), START_TIMEOUT_S)
            except Exception as exc:
                log.warning("MCP server %s (%s) did not start: %s", spec.name, spec.command, exc)
                continue
            tools += [_make_tool(spec.name, session, tool) for tool in listed.tools]
            log.info("MCP server %s: %d tools", spec.name, len(listed.tools))
        yield tools
