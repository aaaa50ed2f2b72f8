"""`tinyarms acp` driven by the ACP SDK's own client side over stdio, as Zed or JetBrains would.

One agent process per module (it is the expensive part); a scripted OpenAI-compatible tier
on 127.0.0.1 makes the tool calls, and a real MCP server (tests/mcp_notes_server.py) comes
from the client's `session/new`. The client grants or refuses permissions, serves
fs/read_text_file and fs/write_text_file from disk (recording them), and records every
session/update and the raw JSON-RPC messages.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import acp
import pytest
import pytest_asyncio
from acp import schema

from conftest import isolated_env
from faultserver import FaultServer

HERE = Path(__file__).resolve().parent
MODEL = "agent-acp"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


class Editor:
    """The client side: what an editor hosting the agent does."""

    def __init__(self) -> None:
        self.updates: list[Any] = []
        self.permissions: list[schema.RequestPermissionRequest] = []
        self.answer = "allow"
        self.reads: list[str] = []
        self.writes: list[str] = []

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)

    async def request_permission(self, session_id: str, tool_call: Any, options: list[Any], **kwargs: Any) -> Any:
        self.permissions.append(schema.RequestPermissionRequest(session_id=session_id, tool_call=tool_call,
                                                                options=options))  # fmt: skip
        outcome = schema.AllowedOutcome(outcome="selected", option_id=self.answer)
        return schema.RequestPermissionResponse(outcome=outcome)

    async def read_text_file(self, session_id: str, path: str, **kwargs: Any) -> schema.ReadTextFileResponse:
        self.reads.append(path)
        return schema.ReadTextFileResponse(content=Path(path).read_text())

    async def write_text_file(self, session_id: str, path: str, content: str, **kwargs: Any) -> None:
        self.writes.append(path)
        Path(path).write_text(content)

    def text(self) -> str:
        return "".join(u.content.text for u in self.of("agent_message_chunk"))

    def of(self, kind: str) -> list[Any]:
        return [u for u in self.updates if getattr(u, "session_update", "") == kind]


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, http: FaultServer) -> Path:
    home = tmp_path_factory.mktemp("acp-home")
    user = home / "config" / "tinyarms" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        f'[tiers.scripted]\nprovider = "openai"\nbase_url = "{http.url}"\nmodel = "{MODEL}"\nmax_retries = 0\n'
        '[roles.agent]\ntier = "scripted"\n[router]\nenabled = false\n'
    )
    return home


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("acp-ws")
    (folder / "greet.py").write_text('def greet(name):\n    return "hello " + nam\n')
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(home: Path) -> AsyncIterator[tuple[Any, Editor, list[dict[str, Any]]]]:
    editor = Editor()
    wire: list[dict[str, Any]] = []
    env = isolated_env(home)
    async with acp.spawn_agent_process(
        editor, sys.executable, "-m", "tinyarms", "-v", "acp", env=env, observers=[lambda e: wire.append(e.message)]
    ) as (conn, _process):
        caps = schema.ClientCapabilities(fs=schema.FileSystemCapabilities(read_text_file=True, write_text_file=True))
        started = await conn.initialize(protocol_version=acp.PROTOCOL_VERSION, client_capabilities=caps)
        assert started.agent_capabilities.load_session
        assert started.agent_info.name == "tinyarms"
        yield conn, editor, wire


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_prompt_streams_tool_calls_asks_permission_and_writes_through_the_client(
    agent: tuple[Any, Editor, list[dict[str, Any]]], http: FaultServer, workspace: Path
) -> None:
    conn, editor, wire = agent
    notes = schema.McpServerStdio(
        name="notes", command=sys.executable, args=[str(HERE / "mcp_notes_server.py")],
        env=[schema.EnvVariable(name="TINYARMS_TEST_NOTE", value="from-the-client")],
    )  # fmt: skip
    session = await conn.new_session(cwd=str(workspace), mcp_servers=[notes])
    assert session.modes.current_mode_id == "agent"
    assert {m.id for m in session.modes.available_modes} == {"ask", "agent", "auto"}
    http.script(MODEL, [
        call("read_file", path="greet.py"),
        call("notes__lookup", word="greet"),
        call("edit_file", path="greet.py", start_line=2, end_line=2, content='    return "hello " + name'),
        {"text": "Fixed the typo in greet()."},
    ])  # fmt: skip
    response = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("fix greet.py")])
    assert response.stop_reason == "end_turn"
    assert "Fixed the typo in greet()." in editor.text()

    started = editor.of("tool_call")
    assert [u.title for u in started] == ["Read greet.py", "notes: lookup", "Edit greet.py"]
    assert [u.kind for u in started] == ["read", "other", "edit"]
    finished = editor.of("tool_call_update")
    assert [u.status for u in finished] == ["completed"] * 3
    diff = next(c for c in finished[2].content if c.type == "diff")
    assert diff.path == str(workspace / "greet.py") and diff.new_text.endswith('"hello " + name\n')
    assert diff.old_text.endswith('"hello " + nam\n')

    # Read and written through the client; permission asked for the MCP call and the write, with the diff.
    assert editor.reads == [str(workspace / "greet.py")] * 2
    assert editor.writes == [str(workspace / "greet.py")]
    assert (workspace / "greet.py").read_text() == 'def greet(name):\n    return "hello " + name\n'
    assert [p.tool_call.title for p in editor.permissions] == ["Call lookup on MCP server notes", "Edit greet.py"]
    assert editor.permissions[1].tool_call.content[0].type == "diff"
    assert {o.kind for o in editor.permissions[1].options} == {"allow_once", "allow_always", "reject_once"}
    # The MCP tool's result (with the env var the client passed) reached the model.
    sent = json.dumps(http.log[-1]["messages"])
    assert "greet: a language server with arms (note from-the-client)" in sent

    # On the wire: the request carries the diff, the answer the option chosen.
    requests = [m for m in wire if m.get("method") == "session/request_permission"]
    assert len(requests) == 2 and requests[1]["params"]["toolCall"]["content"][0]["type"] == "diff"
    answers = [m for m in wire if m.get("id") == requests[1]["id"] and "result" in m]
    assert answers[0]["result"]["outcome"] == {"optionId": "allow", "outcome": "selected"}

    # A refused write changes nothing and the model is told.
    editor.answer = "reject"
    http.script(MODEL, [
        call("read_file", path="greet.py"),
        call("edit_file", path="greet.py", start_line=1, end_line=1, content="def greet(who):"),
        {"text": "The user said no."},
    ])  # fmt: skip
    response = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("rename the parameter")])
    assert response.stop_reason == "end_turn"
    assert "did not allow writing greet.py" in json.dumps(http.log[-1]["messages"])
    assert (workspace / "greet.py").read_text() == 'def greet(name):\n    return "hello " + name\n'
    editor.answer = "allow"

    # /undo puts back what the last run that changed something wrote (the refused run changed nothing).
    editor.updates.clear()
    await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("/undo")])
    assert "That run changed no file" in editor.text()
    editor.updates.clear()
    await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("/undo")])
    assert "Put back: greet.py" in editor.text()
    assert (workspace / "greet.py").read_text() == 'def greet(name):\n    return "hello " + nam\n'


async def test_cancel_stops_a_second_run_mid_step(
    agent: tuple[Any, Editor, list[dict[str, Any]]], http: FaultServer, workspace: Path
) -> None:
    conn, editor, _ = agent
    session = await conn.new_session(cwd=str(workspace), mcp_servers=[])
    http.reset()
    http.script(MODEL, [call("list_files"), {"text": "never", "delay": 60}])
    running = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[acp.text_block("look")]))
    deadline = time.monotonic() + 60
    while len(http.log) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(http.log) == 2  # the second step's model call is in flight
    started = time.monotonic()
    await conn.cancel(session_id=session.session_id)
    response = await asyncio.wait_for(running, 10)
    elapsed = time.monotonic() - started
    print(f"ACP cancel to response: {elapsed * 1000:.0f} ms")
    assert response.stop_reason == "cancelled"
    assert elapsed < 1.0


async def test_ask_mode_changes_nothing_and_a_saved_session_loads(
    agent: tuple[Any, Editor, list[dict[str, Any]]], http: FaultServer, workspace: Path, home: Path
) -> None:
    conn, editor, _ = agent
    session = await conn.new_session(cwd=str(workspace), mcp_servers=[])
    await conn.set_session_mode(session_id=session.session_id, mode_id="ask")
    before = (workspace / "greet.py").read_bytes()
    http.reset()
    http.script(MODEL, [call("edit_file", path="greet.py", content="x = 1\n"), {"text": "I can only look."}])
    response = await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("remember the word zebra")])
    assert response.stop_reason == "end_turn"
    assert set(http.log[0]["tools"]) == {"list_files", "read_file", "search"}  # nothing that writes is offered
    assert (workspace / "greet.py").read_bytes() == before
    with pytest.raises(acp.RequestError):
        await conn.set_session_mode(session_id=session.session_id, mode_id="yolo")

    # A second agent process loads the saved session: the conversation is replayed and carried on.
    other = Editor()
    async with acp.spawn_agent_process(other, sys.executable, "-m", "tinyarms", "acp", env=isolated_env(home)) as (
        conn2, _
    ):
        await conn2.initialize(protocol_version=acp.PROTOCOL_VERSION)
        loaded = await conn2.load_session(cwd=str(workspace), session_id=session.session_id, mcp_servers=[])
        assert loaded.modes.current_mode_id == "ask"
        replayed = [u for u in other.updates if u.session_update == "user_message_chunk"]
        assert replayed[0].content.text == "remember the word zebra"
        http.script(MODEL, [{"text": "zebra"}])
        await conn2.prompt(session_id=session.session_id, prompt=[acp.text_block("which word?")])
        assert "remember the word zebra" in json.dumps(http.log[-1]["messages"])
        with pytest.raises(acp.RequestError):
            await conn2.load_session(cwd=str(workspace), session_id="0" * 32, mcp_servers=[])
