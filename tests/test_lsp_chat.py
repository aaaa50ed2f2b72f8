"""`tinyarms.chat` end to end: the real server over stdio, the real router, a real model.

The model is the embedded Gemma 3 270M behind `python -m llama_cpp.server` on 127.0.0.1
(router, tier, HTTP and LSP all real). Checks that need to see exactly what reached the model
(the earlier turn, an `@path` file and not the one outside) use the fault server, which logs
every request it gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types

from conftest import CLIENTS, isolated_env, start_client
from faultserver import FaultServer
from lsp_editing import Editor, Session, execute, write_config
from model_server import llama_server
from test_lsp_ask import listen
from test_lsp_config import wait_until
from test_lsp_router import as_code_action

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODEL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from llama_server(tmp_path_factory, "embedded:gemma3-270m", "gemma3", "--chat_format", "alpaca")


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CLIENTS)
async def session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, http: FaultServer
) -> AsyncIterator[Session]:
    """One server per client preset for the module, its chat and edit on the fault server ("ok")."""
    home = tmp_path_factory.mktemp("home")
    env = isolated_env(home)
    write_config(Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml", http.url, "ok")
    workspace = tmp_path_factory.mktemp("workspace")
    lsp = await start_client(str(request.param), workspace, env)
    yield Session(lsp=lsp, editor=Editor(lsp), workspace=workspace)
    await lsp.shutdown_session()


SOURCE = "def area(width, height):\n    return width * height\n"
SELECTION = {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}


async def test_chat_streams_progress_and_the_conversation_survives_a_restart(
    model_url: str, user_config: Path, env: dict[str, str], workspace: Path
) -> None:
    write_config(user_config, model_url, "gemma3", max_tokens=16)
    lsp = await start_client("visual-studio-code", workspace, env)
    try:
        editor = Editor(lsp)
        uri = editor.open(workspace / "geometry.py", SOURCE)
        lsp.progress_reports["chat-1"] = []
        first = await asyncio.wait_for(
            execute(lsp, "tinyarms.chat", {"text": "What does this function compute?", "uri": uri,
                                           "range": SELECTION, "workDoneToken": "chat-1"}),
            MODEL_TIMEOUT_S,
        )  # fmt: skip
        reports = lsp.progress_reports["chat-1"]
        assert isinstance(reports[0], types.WorkDoneProgressBegin) and first["conversation"] in reports[0].title
        assert isinstance(reports[-1], types.WorkDoneProgressEnd)
        pieces = [r.message or "" for r in reports[1:-1] if isinstance(r, types.WorkDoneProgressReport)]
        assert first["text"].strip() and len(pieces) >= 2 and "".join(pieces) == first["text"]
        decision = first["decision"]
        assert (decision["role"], decision["tier"], decision["model"]) == ("chat", "team", "gemma3")
        assert decision["stage"] in ("explicit", "rule", "embedding", "fallback") and decision["reason"]
        assert "-> team" in (reports[-1].message or "")  # the end report is the decision line
        assert first["usage"]["completion_tokens"] > 0 and first["cost_usd"] == 0
        assert {"kind": "selection", "path": "geometry.py", "tokens": 13} in first["context"]
        conversation = first["conversation"]

        second = await asyncio.wait_for(
            execute(lsp, "tinyarms.chat", {"text": "And in one word?", "conversation": conversation}),
            MODEL_TIMEOUT_S,
        )
        assert second["conversation"] == conversation and second["text"].strip()
        assert second["context"][0]["kind"] == "history" and second["context"][0]["turns"] == 2
    finally:
        await lsp.shutdown_session()

    # A new server process, same state dir: the conversation is still there and goes on.
    lsp = await start_client("visual-studio-code", workspace, env)
    try:
        listed = await execute(lsp, "tinyarms.chat.list", {})
        [summary] = listed["conversations"]
        assert summary["id"] == conversation and summary["turns"] == 4
        assert summary["title"] == "What does this function compute?"
        third = await asyncio.wait_for(
            execute(lsp, "tinyarms.chat", {"text": "Thanks!", "conversation": conversation}), MODEL_TIMEOUT_S
        )
        assert third["context"][0] == {"kind": "history", "tokens": third["context"][0]["tokens"], "turns": 4}
    finally:
        await lsp.shutdown_session()


async def test_a_second_turn_sends_the_first(session: Session, http: FaultServer) -> None:
    lsp = session.lsp
    first = await execute(lsp, "tinyarms.chat", {"text": "/chat Remember the word marmalade."})
    second = await execute(lsp, "tinyarms.chat", {"text": "/chat Which word?", "conversation": first["conversation"]})
    assert second["conversation"] == first["conversation"]
    sent = http.log[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert "marmalade" in sent[1]["content"] and sent[2]["content"] == "Answer from ok."
    assert "Which word?" in sent[3]["content"] and "marmalade" not in sent[3]["content"]


async def test_mentioned_files_inside_the_workspace_are_sent_and_outside_refused(
    session: Session, http: FaultServer
) -> None:
    lsp, workspace = session.lsp, session.workspace
    (workspace / "src").mkdir(exist_ok=True)
    (workspace / "src" / "util.py").write_text("def helper():\n    return 'HELPER-BODY'\n")
    (workspace.parent / "outside.txt").write_text("OUTSIDE-SECRET\n")
    result = await execute(lsp, "tinyarms.chat", {"text": "/chat compare @src/util.py with @../outside.txt"})
    mentions = [p for p in result["context"] if p["kind"] == "mention"]
    assert mentions[0]["path"] == "src/util.py" and mentions[0]["tokens"] > 0 and "note" not in mentions[0]
    assert mentions[1] == {"kind": "mention", "path": "../outside.txt", "tokens": 0,
                           "note": "refused: it is outside the workspace folders"}  # fmt: skip
    question = http.log[-1]["messages"][-1]["content"]
    assert "HELPER-BODY" in question and "src/util.py" in question
    assert "OUTSIDE-SECRET" not in str(http.log[-1]["messages"])
    assert "@../outside.txt: refused" in question  # the model is told, so it does not make it up


async def test_rules_reach_the_system_text(session: Session, http: FaultServer) -> None:
    rules = session.workspace / "AGENTS.md"
    rules.write_text("Always answer in French.\n")
    try:
        result = await execute(session.lsp, "tinyarms.chat", {"text": "/chat hello"})
    finally:
        rules.unlink()
    assert result["context"][0]["kind"] == "rules" and result["context"][0]["path"] == "AGENTS.md"
    system = http.log[-1]["messages"][0]
    assert system["role"] == "system" and "Always answer in French." in system["content"]


async def test_a_long_conversation_is_trimmed_oldest_first_and_says_so(session: Session, http: FaultServer) -> None:
    lsp = session.lsp
    conversation = None
    for word in ("alpha", "bravo", "charlie", "delta"):
        text = f"/chat {word} " + "padding words to fill the context budget of the chat role " * 24
        result = await execute(lsp, "tinyarms.chat", {"text": text, "conversation": conversation})
        conversation = result["conversation"]
    sent = str(http.log[-1]["messages"])
    assert "delta" in sent and "charlie" in sent and "alpha" not in sent
    assert result["note"] and "oldest" in result["note"] and "context budget" in result["note"]
    assert result["context"][0]["kind"] == "history" and "oldest" in result["context"][0]["note"]


async def test_list_and_delete_conversations(session: Session) -> None:
    lsp = session.lsp
    first = await execute(lsp, "tinyarms.chat", {"text": "/chat one", "conversation": "my-chat_1"})
    assert first["conversation"] == "my-chat_1"
    second = await execute(lsp, "tinyarms.chat", {"text": "/chat two"})
    listed = (await execute(lsp, "tinyarms.chat.list", {}))["conversations"]
    ids = [c["id"] for c in listed]
    assert ids.index(second["conversation"]) < ids.index("my-chat_1")  # the most recently updated first
    assert next(c for c in listed if c["id"] == "my-chat_1")["turns"] == 2
    assert await execute(lsp, "tinyarms.chat.delete", {"conversation": "my-chat_1"}) == {"deleted": True}
    assert await execute(lsp, "tinyarms.chat.delete", {"conversation": "my-chat_1"}) == {"deleted": False}
    remaining = [c["id"] for c in (await execute(lsp, "tinyarms.chat.list", {}))["conversations"]]
    assert len(remaining) == len(ids) - 1 and "my-chat_1" not in remaining
    for bad in ("../../outside", "a/b", ""):
        with pytest.raises(Exception, match="conversation id"):
            await execute(lsp, "tinyarms.chat", {"text": "/chat x", "conversation": bad})
    with pytest.raises(Exception, match=r"\$\.text"):
        await execute(lsp, "tinyarms.chat", {"text": 5})


async def test_edit_and_agent_routes_carry_an_action(session: Session) -> None:
    lsp, editor = session.lsp, session.editor
    uri = editor.open(session.workspace / "geometry_action.py", SOURCE)
    result = await execute(lsp, "tinyarms.chat", {"text": "/refactor", "uri": uri, "range": SELECTION})
    assert result["decision"]["role"] == "edit"
    [action] = result["actions"]
    assert action["command"] == "tinyarms.edit"
    argument = action["arguments"][0]
    assert argument["uri"] == uri and argument["version"] == 1 and argument["answer"] == result["text"]
    # Applying it runs every check: the fault server's answer is a sentence, not code.
    applied = await execute(lsp, action["command"], argument)
    assert applied["applied"] is False and applied["refused"].endswith("so nothing was changed.")
    assert editor.text(uri) == SOURCE and not editor.requests

    planned = await execute(lsp, "tinyarms.chat", {"text": "/plan move every module to async"})
    assert planned["decision"]["role"] == "agent"
    assert planned["actions"] == [{"title": "Start the agent", "command": "tinyarms.agent",
                                   "arguments": [{"goal": "/plan move every module to async"}]}]  # fmt: skip
    plain = await execute(lsp, "tinyarms.chat", {"text": "/explain", "uri": uri, "range": SELECTION})
    assert plain["actions"] == []


async def test_explain_and_review_code_actions_run_chat(session: Session, http: FaultServer) -> None:
    lsp = session.lsp
    uri = session.editor.open(session.workspace / "geometry_explain.py", SOURCE)
    selection = types.Range(types.Position(0, 0), types.Position(2, 0))
    actions = await lsp.text_document_code_action_async(
        types.CodeActionParams(types.TextDocumentIdentifier(uri), selection, types.CodeActionContext(diagnostics=[]))
    )
    commands = {a.title: as_code_action(a)["command"] for a in actions or []}
    assert commands["tinyarms: Explain"]["command"] == "tinyarms.chat"
    assert commands["tinyarms: Review"]["command"] == "tinyarms.chat"
    explain = commands["tinyarms: Explain"]["arguments"][0]
    result = await execute(lsp, "tinyarms.chat", explain)
    assert result["decision"]["route"] == "explain" and result["text"] == "Answer from ok."
    assert "return width * height" in http.log[-1]["messages"][-1]["content"]


async def test_streaming_as_tinyarms_stream_without_a_token(session: Session) -> None:
    streamed = listen(session.lsp, "tinyarms/stream")
    result = await execute(session.lsp, "tinyarms.chat", {"text": "/chat hi", "stream_id": "s-9"})
    await wait_until(lambda: "".join(s.get("delta", "") for s in streamed if s["stream_id"] == "s-9") == result["text"])
