"""The one request path from the command line: `tinyarms ask` against a real loopback
server speaking the OpenAI wire format, with the real router (MiniLM) deciding.

- The semantic cache (`cache.semantic`) answers a reworded question from the cache: the
  router's embedder reaches the tier chain, and the trace and `tinyarms stats` say so.
- A route a user adds in a workspace file, with its own instruction, reaches the model
  with that instruction.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_tinyarms
from faultserver import FaultServer
from test_lsp_ask import http, unique_cloud_config

__all__ = ["http"]  # the module-scoped loopback server fixture, shared with test_lsp_ask

FIRST = "what does a list comprehension do"
REWORDED = "what is a list comprehension doing"


def asked(http: FaultServer, model: str) -> list[list[dict[str, str]]]:
    return [entry["messages"] for entry in http.log if entry["model"] == model]


def test_a_reworded_question_is_answered_from_the_semantic_cache(
    env: dict[str, str], user_config: Path, http: FaultServer, workspace: Path
) -> None:
    model = unique_cloud_config(user_config, http, "[cache]\nsemantic = true\n")
    env["TEAM_KEY"] = "not-a-real-key"

    first = run_tinyarms(env, "ask", FIRST, "--json", "--workspace", str(workspace))
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert answer["decision"]["route"] == "explain" and answer["trace"]["cache"] == "miss"
    assert answer["text"] == f"Answer from {model}."

    second = run_tinyarms(env, "ask", REWORDED, "--workspace", str(workspace))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == answer["text"]
    assert "cache semantic-hit" in second.stderr  # the summary line names where the answer came from
    assert len(asked(http, model)) == 1  # the model was asked once

    records = [json.loads(line) for line in (Path(env["XDG_STATE_HOME"]) / "tinyarms" / "trace.jsonl").open()]
    assert [r["cache"] for r in records] == ["miss", "semantic-hit"]
    assert records[1]["similarity"] >= 0.95 and records[1]["tier"] == "team" and records[1]["cost_usd"] == 0

    stats = run_tinyarms(env, "stats", "--json")
    chat = json.loads(stats.stdout)["roles"]["chat"]
    assert (chat["calls"], chat["cache_hits"], chat["semantic_hits"]) == (2, 1, 1)
    assert "cache hits: 1 (1 semantic)" in run_tinyarms(env, "stats").stdout


def test_without_the_semantic_layer_the_reworded_question_goes_to_the_model(
    env: dict[str, str], user_config: Path, http: FaultServer, workspace: Path
) -> None:
    model = unique_cloud_config(user_config, http)  # cache.semantic is off by default
    env["TEAM_KEY"] = "not-a-real-key"
    for question in (FIRST, REWORDED):
        done = run_tinyarms(env, "ask", question, "--json", "--workspace", str(workspace))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["trace"]["cache"] == "miss"
    assert len(asked(http, model)) == 2


TRANSLATE = """
[routes.translate]
role = "chat"
utterances = ["port this to rust", "rewrite this function in rust", "convert this code to rust"]
instruction = "Translate this code into idiomatic Rust."
action = "tinyarms: Translate to Rust"
action_kind = "refactor.rewrite"
"""


def test_a_route_added_in_the_workspace_reaches_the_model_with_its_instruction(
    env: dict[str, str], user_config: Path, http: FaultServer, workspace: Path
) -> None:
    model = unique_cloud_config(user_config, http)
    env["TEAM_KEY"] = "not-a-real-key"
    (workspace / ".tinyarms.toml").write_text(TRANSLATE)  # an untrusted workspace may add routes

    bare = run_tinyarms(env, "ask", "/translate", "--json", "--workspace", str(workspace))
    assert bare.returncode == 0, bare.stderr
    decision = json.loads(bare.stdout)["decision"]
    assert (decision["route"], decision["stage"], decision["role"]) == ("translate", "explicit", "chat")
    [messages] = asked(http, model)
    assert messages[-1]["content"] == "Translate this code into idiomatic Rust."

    more = run_tinyarms(env, "ask", "/translate keep the names", "--workspace", str(workspace))
    assert more.returncode == 0, more.stderr
    assert asked(http, model)[-1][-1]["content"] == "Translate this code into idiomatic Rust. keep the names"

    # A broken action kind is a config problem naming the key, not a silent default.
    (workspace / ".tinyarms.toml").write_text(TRANSLATE.replace('"refactor.rewrite"', '"rewrite-it"'))
    broken = run_tinyarms(env, "config", "show", "--workspace", str(workspace))
    assert broken.returncode == 1
    assert "unknown action_kind 'rewrite-it'" in broken.stderr and ".tinyarms.toml:7" in broken.stderr


def test_slash_commands_are_spelled_out_and_other_text_is_left_alone(tmp_path: Path) -> None:
    from tinyarms.config import ConfigInputs, load_config
    from tinyarms.requests.messages import build_messages
    from tinyarms.router.decision import Decision

    config = load_config(ConfigInputs(user_file=tmp_path / "none.toml", env={})).config
    assert config is not None

    def user_text(text: str, route: str | None, role: str = "chat", stage: str = "explicit") -> tuple[str, bool]:
        decision = Decision(route=route, role=role, tier="local", score=1.0, margin=1.0, stage=stage, reason="")  # type: ignore[arg-type]
        system, user = build_messages(text, decision, "", config.routes)
        return user["content"], "The task: " in system["content"]

    assert user_text("/fix the loop", "fix", "edit") == ("Find and fix the bug in this code. the loop", False)
    assert user_text("/gen a parser", "generate", "edit") == ("Write the code described here. a parser", False)
    assert user_text("/chat hello", None) == ("hello", False)
    # A path is not a command, even when the caller named the role.
    assert user_text("/usr/bin/python is missing", None) == ("/usr/bin/python is missing", False)
    # A routed request keeps its words; the route's instruction becomes the task in the system text.
    assert user_text("what does this regex match", "explain", stage="embedding") == ("what does this regex match", True)
    assert user_text("", "review") == ("Review this code: correctness, clarity, risks.", False)
