"""`tinyarms.ask` end to end: the real server over stdio routes the request and runs the
role's tier chain against a real loopback server speaking the OpenAI wire format."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import run_tinyarms
from faultserver import FaultServer
from test_lsp_config import wait_until
from test_lsp_router import as_code_action


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


async def test_ask_answers_through_the_fallback_role_when_the_router_cannot_load(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer, tmp_path: Path
) -> None:
    cloud_config(user_config, http, "ok")
    env["TEAM_KEY"] = "not-a-real-key"
    env["TINYARMS_ROUTER__ENCODER"] = str(tmp_path / "no-such-encoder")  # a folder that is not there
    lsp = await lsp_factory()
    answer = await ask(lsp, {"text": "explain what this function does", "stream_id": "s3"})
    decision = answer["decision"]
    assert (decision["stage"], decision["route"], decision["role"]) == ("fallback", None, "chat")
    assert "router failed" in decision["reason"] and "no-such-encoder" in decision["reason"]
    assert answer["text"] == "Answer from ok." and answer["trace"]["stage"] == "fallback"
    # tinyarms.route says the same, and an explicit role still skips the router.
    routed = await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(command="tinyarms.route", arguments=[{"text": "fix this bug"}])
    )
    assert routed["stage"] == "fallback" and routed["reason"] == decision["reason"]
    explicit = await ask(lsp, {"text": "rename this variable", "role": "edit"})
    assert explicit["decision"]["stage"] == "explicit" and explicit["decision"]["role"] == "edit"


async def test_a_wrong_argument_shape_names_the_field(lsp_factory: Callable[..., Any]) -> None:
    lsp = await lsp_factory()
    with pytest.raises(Exception, match=r"expected str @ \$\.text"):
        await ask(lsp, {"text": 42})
    with pytest.raises(Exception, match=r"\$\.range\.start"):
        await ask(lsp, {"text": "/explain", "uri": "file:///x.py", "range": {"start": {"line": "one"}}})
    with pytest.raises(Exception, match="unknown role 'autocomplete'"):
        await ask(lsp, {"text": "hello", "role": "autocomplete"})


def unique_cloud_config(user_config: Path, http: FaultServer, extra: str = "") -> str:
    """chat on one deterministic tier whose model name no earlier run used (the response cache is shared)."""
    model = f"answer-{uuid.uuid4().hex[:10]}"
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text(
        f'[tiers.team]\nprovider = "openai"\nbase_url = "{http.url}"\nmodel = "{model}"\napi_key_env = "TEAM_KEY"\n'
        f'\n[roles.chat]\ntier = "team"\ntemperature = 0\n{extra}'
    )
    return model


async def test_a_reworded_question_is_answered_from_the_semantic_cache(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer
) -> None:
    model = unique_cloud_config(user_config, http, "\n[cache]\nsemantic = true\n")
    env["TEAM_KEY"] = "not-a-real-key"
    lsp = await lsp_factory()
    first = await ask(lsp, {"text": "what does a list comprehension do"})
    second = await ask(lsp, {"text": "what is a list comprehension doing", "stream_id": "s4"})
    assert first["trace"]["cache"] == "miss" and second["trace"]["cache"] == "semantic-hit"
    assert second["text"] == first["text"] == f"Answer from {model}." and second["trace"]["similarity"] >= 0.95
    assert sum(1 for entry in http.log if entry["model"] == model) == 1
    stats = json.loads(run_tinyarms(env, "stats", "--json").stdout)["roles"]["chat"]
    assert stats["semantic_hits"] == 1 and stats["cache_hits"] == 1


async def test_a_workspace_route_offers_its_action_and_sends_its_instruction(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer, workspace: Path
) -> None:
    model = unique_cloud_config(user_config, http)
    env["TEAM_KEY"] = "not-a-real-key"
    (workspace / ".tinyarms.toml").write_text(
        '[routes.translate]\nrole = "chat"\nutterances = ["port this to rust", "rewrite this in rust"]\n'
        'instruction = "Translate this code into idiomatic Rust."\naction = "tinyarms: Translate to Rust"\n'
        'action_kind = "refactor.rewrite"\n'
    )
    lsp = await lsp_factory()
    source = workspace / "add.py"
    source.write_text("def add(a, b):\n    return a + b\n")
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(source.as_uri(), "python", 1, source.read_text()))
    )
    selection = types.Range(types.Position(0, 0), types.Position(2, 0))
    actions = await lsp.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(source.as_uri()), selection, types.CodeActionContext(diagnostics=[])
        )
    )
    offered = {action.title: as_code_action(action) for action in actions or []}
    assert "tinyarms: Explain" in offered and "tinyarms: Translate to Rust" in offered
    translate = offered["tinyarms: Translate to Rust"]  # a chat route: its action is a chat turn
    assert translate["command"]["command"] == "tinyarms.chat" and translate["kind"] in ("refactor.rewrite", None)
    assert translate["command"]["arguments"][0]["text"] == "/translate"
    argument = {"text": "/translate", "uri": source.as_uri(),
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}}}  # fmt: skip
    answer = await ask(lsp, argument)
    assert answer["decision"]["route"] == "translate"
    [sent] = [entry["messages"] for entry in http.log if entry["model"] == model]
    code = "```\ndef add(a, b):\n    return a + b\n```"
    assert sent[-1]["content"] == f"{code}\n\nTranslate this code into idiomatic Rust."
    # The selection goes once, in the user message: no second "File context" copy (nor a hash of it).
    assert [m["role"] for m in sent] == ["system", "user"] and "File context" not in sent[0]["content"]
