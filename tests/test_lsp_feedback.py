"""Over LSP (stdio, VS Code and Neovim capabilities): the strong/weak decision in what `tinyarms.ask`
returns, and `tinyarms.feedback` (a thumbs-down, a route correction) reaching the decision trace."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from faultserver import FaultServer


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


async def execute(lsp: Any, command: str, argument: dict[str, Any]) -> Any:
    return await lsp.workspace_execute_command_async(types.ExecuteCommandParams(command=command, arguments=[argument]))


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
