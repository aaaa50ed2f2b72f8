"""Over LSP (stdio, VS Code and Neovim capabilities): the strong/weak decision in what `tinyarms.ask`
returns, `tinyarms.feedback` (a thumbs-down, a route correction) reaching the decision trace, and
`tinyarms.reask` ("try a stronger tier") answering again on the strong tier and recording it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from faultserver import FaultServer
from model_server import llama_server


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


async def execute(lsp: Any, command: str, argument: dict[str, Any]) -> Any:
    return await lsp.workspace_execute_command_async(types.ExecuteCommandParams(command=command, arguments=[argument]))


def tier(name: str, url: str, model: str, extra: str = 'api_key_env = "TEAM_KEY"') -> str:
    return f'[tiers.{name}]\nprovider = "openai"\nbase_url = "{url}"\nmodel = "{model}"\n{extra}\n'


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


async def test_strong_weak_decision_and_feedback_reach_the_trace(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer
) -> None:
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text(
        f"""
[tiers.cheap]
provider = "openai"
base_url = "{http.url}"
model = "ok"
api_key_env = "TEAM_KEY"

[tiers.strong]
provider = "openai"
base_url = "{http.url}"
model = "ok"
api_key_env = "TEAM_KEY"

[roles.chat]
tier = "cheap"
escalate_to = ["strong"]
strong_share = 0.2
strong_threshold = 0.3

[roles.edit]
tier = "cheap"
escalate_to = ["strong"]
"""
    )
    env["TEAM_KEY"] = "not-a-real-key"
    lsp = await lsp_factory()
    commands = lsp.initialize_result.capabilities.execute_command_provider.commands
    assert "tinyarms.feedback" in commands

    short = await execute(lsp, "tinyarms.ask", {"text": "what does this regex match: ^a+b?$"})
    assert short["decision"]["role"] == "chat" and short["decision"]["tier"] == "cheap"
    assert short["decision"]["strength"]["strong"] is False and short["decision"]["strength"]["threshold"] == 0.3
    assert short["trace"]["steps"][0]["tier"] == "cheap"
    long_text = "please explain what this module does, step by step: " + "total = sum(v for v in values); " * 60
    hard = await execute(lsp, "tinyarms.ask", {"text": long_text})
    strength = hard["decision"]["strength"]
    assert hard["decision"]["role"] == "chat", hard["decision"]
    assert strength["strong"] is True and strength["difficulty"] >= 0.3 and strength["request_tokens"] > 400
    assert hard["decision"]["tier"] == "strong" and "straight to strong" in hard["decision"]["reason"]
    assert hard["trace"]["steps"][0]["tier"] == "strong" and hard["trace"]["strong"] is True

    # A thumbs-down on the last answer (no trace id: this session's last request) and a route
    # correction of the first one by its trace id.
    down = await execute(lsp, "tinyarms.feedback", {"rating": "down"})
    assert down == {"recorded": True, "trace_id": hard["trace"]["id"], "correction": False}
    fixed = await execute(lsp, "tinyarms.feedback", {"trace_id": short["trace"]["id"], "route": "fix"})
    assert fixed["correction"] is True

    # Bad feedback is an InvalidParams error that says what is wrong, and writes nothing.
    for bad, why in (({"rating": "meh"}, "rating must be one of up, down"), ({"route": "fixx"}, "unknown route 'fixx'"),
                     ({"trace_id": "nope", "route": "fix"}, "not remembered"), ({}, "at least one of"),
                     ({"rating": 5}, "rating")):  # fmt: skip
        with pytest.raises(Exception, match=why):
            await execute(lsp, "tinyarms.feedback", bad)

    state = Path(env["XDG_STATE_HOME"]) / "tinyarms"
    trace = lines(state / "trace.jsonl")
    requests = {r["id"]: r for r in trace if r.get("kind") != "feedback"}
    assert requests[short["trace"]["id"]]["difficulty"] == short["decision"]["strength"]["difficulty"]
    assert requests[hard["trace"]["id"]]["strong_threshold"] == 0.3 and requests[hard["trace"]["id"]]["strong"] is True
    feedback = [r for r in trace if r.get("kind") == "feedback"]
    assert [(f["trace_id"], f.get("rating"), f.get("route")) for f in feedback] == [
        (hard["trace"]["id"], "down", None),
        (short["trace"]["id"], None, "fix"),
    ]
    assert feedback[1]["from_route"] == short["decision"]["route"]
    assert not any("regex" in json.dumps(r) for r in trace)  # the trace never holds request text
    corrected = lines(state / "corrections.jsonl")
    assert [(c["route"], c["text"], c["trace_id"]) for c in corrected] == [
        ("fix", "what does this regex match: ^a+b?$", short["trace"]["id"])
    ]
    assert (state / "corrections.jsonl").stat().st_mode & 0o777 == 0o600


@pytest.fixture(scope="module")
def model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from llama_server(tmp_path_factory, "embedded:gemma3-270m", "gemma3", "--chat_format", "alpaca")


async def test_try_a_stronger_tier_answers_again_and_is_recorded(
    lsp_factory: Callable[..., Any], user_config: Path, env: dict[str, str], http: FaultServer, model_url: str
) -> None:
    """`tinyarms.reask` on a chat answer goes to the strong tier (the real Gemma behind llama_cpp.server)
    with the same messages; on an ask answer to a named tier (scripted, so its log shows what it got);
    each leaves a `reask_stronger` feedback line that `router fit --from-log` counts against the cheap tier."""
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text(
        tier("cheap", http.url, "ok") + tier("strong", model_url, "gemma3", "max_tokens = 12")
        + tier("scripted", http.url, "strong-script")
        + """
[roles.chat]
tier = "cheap"
escalate_to = ["strong"]
"""
    )
    env["TEAM_KEY"] = "not-a-real-key"
    lsp = await lsp_factory()
    assert "tinyarms.reask" in lsp.initialize_result.capabilities.execute_command_provider.commands

    chat = await execute(lsp, "tinyarms.chat", {"text": "/chat what is a closure in JavaScript?"})
    assert chat["decision"]["tier"] == "cheap" and chat["text"] == "Answer from ok."
    first_id = chat["trace"]["id"]
    again = await execute(lsp, "tinyarms.reask", {"trace_id": first_id, "stream_id": "s1"})
    assert again["reask_of"] == first_id and again["trace"]["id"] != first_id
    assert again["decision"]["tier"] == "strong" and again["trace"]["steps"][0]["tier"] == "strong"
    assert again["trace"]["steps"][0]["model"] == "gemma3" and again["text"].strip()
    assert "asked again on strong" in again["decision"]["reason"]
    # Asking the strong answer again: the chain has nothing stronger, and that is an error writing nothing.
    with pytest.raises(Exception, match="no tier stronger than strong for the chat role"):
        await execute(lsp, "tinyarms.reask", {"trace_id": again["trace"]["id"]})

    http.scripts["strong-script"] = [{"text": "the scripted strong answer"}]
    before = len(http.log)  # the fault server is shared by the module's tests
    asked = await execute(lsp, "tinyarms.ask", {"text": "/chat explain what a monad is", "role": "chat"})
    named = await execute(lsp, "tinyarms.reask", {"tier": "scripted"})  # no trace id: the last request
    assert named["reask_of"] == asked["trace"]["id"] and named["text"] == "the scripted strong answer"
    sent = [(e["model"], e["messages"]) for e in http.log[before:]]
    assert [model for model, _ in sent] == ["ok", "strong-script"] and sent[0][1] == sent[1][1]  # the same messages
    for bad, why in (({"trace_id": "nope"}, "not remembered"), ({"tier": "nope"}, "unknown tier 'nope'"),
                     ({"tier": 3}, "tier")):  # fmt: skip
        with pytest.raises(Exception, match=why):
            await execute(lsp, "tinyarms.reask", bad)

    trace = lines(Path(env["XDG_STATE_HOME"]) / "tinyarms" / "trace.jsonl")
    reasks = [r for r in trace if r.get("kind") == "feedback"]
    assert [(r["trace_id"], r["outcome"], r["reask_trace_id"], r["tier"]) for r in reasks] == [
        (first_id, "reask_stronger", again["trace"]["id"], "strong"),
        (asked["trace"]["id"], "reask_stronger", named["trace"]["id"], "scripted"),
    ]
    # The difficulty model reads it as "the cheap tier's answer did not do".
    from tinyarms.router.difficulty import feedback_by_request, outcome_label

    first_record = next(r for r in trace if r.get("id") == first_id)
    assert outcome_label(first_record, feedback_by_request(trace)[first_id], "cheap") == 1
