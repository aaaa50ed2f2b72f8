"""The `privacy` preset (`trace.text = false`): the decision trace keeps names and numbers,
no free text; requests run through the real tier chain against the loopback fault server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_tinyarms
from faultserver import FaultServer
from tinyarms.tiers.redact import names_only


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


def setup(env: dict[str, str], server: FaultServer, preset: str) -> None:
    user = Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        f'extends = "{preset}"\n\n'
        f'[tiers.broken]\nprovider = "openai"\nbase_url = "{server.url}"\nmodel = "500"\nmax_retries = 0\n\n'
        f'[tiers.works]\nprovider = "openai"\nbase_url = "{server.url}"\nmodel = "ok"\n\n'
        '[roles.chat]\ntier = "broken"\nescalate_to = ["works"]\n'
    )


def trace_text(env: dict[str, str]) -> str:
    return (Path(env["XDG_STATE_HOME"]) / "tinyarms" / "trace.jsonl").read_text()


def ask(env: dict[str, str], text: str) -> dict[str, object]:
    done = run_tinyarms(env, "ask", "--role", "chat", "--json", text)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    assert answer["text"] == "Answer from ok." and answer["tier"] == "works"
    return answer


def test_privacy_trace_has_no_text(env: dict[str, str], server: FaultServer) -> None:
    setup(env, server, "privacy")
    question = f"how do I parse the invoice for ACME-{uuid.uuid4().hex}"
    answer = ask(env, question)
    # The answer the caller gets still says why (it is theirs, on their screen) ...
    assert "server error" in json.dumps(answer["trace"])
    # ... the file on disk does not.
    text = trace_text(env)
    [record] = [json.loads(line) for line in text.splitlines()]
    assert question not in text and "ACME" not in text and "Answer from" not in text
    assert "reason" not in text and "server error" not in text
    assert record["tier"] == "works" and record["role"] == "chat" and record["latency_ms"] > 0
    assert [(s["tier"], s["outcome"], s.get("kind")) for s in record["steps"]] == [
        ("broken", "error", "server"), ("works", "ok", None),
    ]  # fmt: skip


def test_without_privacy_the_trace_keeps_reasons(env: dict[str, str], server: FaultServer) -> None:
    setup(env, server, "local-only")  # the same tiers, trace.text left at its default
    ask(env, f"a question {uuid.uuid4().hex}")
    assert "had a server error (HTTP 500)" in trace_text(env)


def test_names_only_drops_any_free_text_field() -> None:
    record = {
        "role": "chat", "tier": "works", "latency_ms": 12.5, "cache": "miss", "escalations": 0,
        "question": "how do I parse the invoice", "kept": "every tier after 'x' failed",
        "steps": [{"tier": "broken", "outcome": "error", "errors": ["server"], "reason": "HTTP 500: <echo>"}],
        "context": [{"kind": "file", "path": "/home/me/secret.py", "tokens": 40}],
    }  # fmt: skip
    assert names_only(record) == {
        "role": "chat", "tier": "works", "latency_ms": 12.5, "cache": "miss", "escalations": 0,
        "steps": [{"tier": "broken", "outcome": "error", "errors": ["server"]}],
        "context": [{"kind": "file", "tokens": 40}],
    }  # fmt: skip
