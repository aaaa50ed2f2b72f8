"""`tinyarms.ask` end to end: the real server over stdio routes the request and runs the
role's tier chain against a real loopback server speaking the OpenAI wire format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from faultserver import FaultServer
from test_lsp_config import wait_until


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def cloud_config(user_config: Path, http: FaultServer, model: str) -> None:
    """chat and edit on an OpenAI-compatible tier at `http` whose model name scripts its faults."""
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text(
        f"""
[tiers.team]
provider = "openai"
base_url = "{http.url}"
model = "{model}"
api_key_env = "TEAM_KEY"
max_retries = 0

[tiers.backup]
provider = "openai"
base_url = "{http.url}"
model = "ok"
api_key_env = "TEAM_KEY"

[roles.chat]
tier = "team"
escalate_to = ["backup"]

[roles.edit]
tier = "team"
escalate_to = ["backup"]
"""
    )


def listen(lsp: LanguageClient, method: str) -> list[dict[str, Any]]:
    """Notifications of `method` as dicts (pygls hands unknown ones over as namedtuples)."""
    seen: list[dict[str, Any]] = []

    @lsp.feature(method)
    def on_notification(params: Any) -> None:
        seen.append(params._asdict() if hasattr(params, "_asdict") else dict(params))

    return seen


async def ask(lsp: LanguageClient, argument: dict[str, Any]) -> Any:
    return await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(command="tinyarms.ask", arguments=[argument])
    )


async def test_ask_streams_the_answer_of_the_routed_role(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer, workspace: Path
) -> None:
    cloud_config(user_config, http, "ok")
    env["TEAM_KEY"] = "not-a-real-key"
    lsp = await lsp_factory()
    streamed = listen(lsp, "tinyarms/stream")
    statuses = listen(lsp, "tinyarms/status")
    source = workspace / "words.py"
    source.write_text("def count(words):\n    return len(words)\n")
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=source.as_uri(), language_id="python", version=1, text=source.read_text()
            )
        )
    )
    answer = await ask(
        lsp,
        {
            "text": "/explain",
            "uri": source.as_uri(),
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}},
            "stream_id": "s1",
        },
    )
    assert answer["text"] == "Answer from ok."
    assert answer["decision"]["route"] == "explain" and answer["decision"]["stage"] == "explicit"
    assert answer["trace"]["tier"] == "team" and answer["trace"]["role"] == "chat"
    # The selected code went to the model, with the slash command spelled out.
    asked = http.log[-1]
    assert asked["model"] == "ok" and asked["path"].endswith("/chat/completions") and asked["auth"]
    question = asked["messages"][-1]["content"]
    assert "def count(words):\n    return len(words)" in question and "Explain what this code does." in question
    assert "/explain" not in question
    await wait_until(lambda: "".join(s.get("delta", "") for s in streamed if s["stream_id"] == "s1") == answer["text"])
    await wait_until(lambda: any(s.get("kind") == "decision" and s.get("cost_usd") is not None for s in statuses))


async def test_ask_falls_back_along_the_chain_and_says_so(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer
) -> None:
    cloud_config(user_config, http, "500")
    env["TEAM_KEY"] = "not-a-real-key"
    lsp = await lsp_factory()
    answer = await ask(lsp, {"text": "fix the off by one error in my loop please", "stream_id": "s2"})
    assert answer["decision"]["route"] == "fix" and answer["decision"]["role"] == "edit"
    assert answer["text"] == "Answer from ok."
    tried = [(step["tier"], step["outcome"]) for step in answer["trace"]["steps"]]
    assert tried == [("team", "error"), ("backup", "ok")], tried


async def test_ask_with_every_tier_failing_is_a_clear_error(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer
) -> None:
    cloud_config(user_config, http, "500")
    env.pop("TEAM_KEY", None)  # no key at all: each tier names the variable
    lsp = await lsp_factory()
    with pytest.raises(Exception) as failure:
        await ask(lsp, {"text": "hello", "role": "chat", "tier": "team"})
    assert "TEAM_KEY" in str(failure.value)
    # The server is still there.
    decision = await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(command="tinyarms.route", arguments=[{"text": "write tests for this"}])
    )
    assert decision["route"] == "test"
