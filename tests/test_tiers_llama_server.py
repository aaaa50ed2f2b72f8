"""End to end against a real OpenAI-compatible server: llama-cpp-python's own
`python -m llama_cpp.server` serving the embedded SmolLM2-135M on 127.0.0.1.

Answers stream through `run_role` and `tinyarms ask`; usage and cost reach the trace,
the spend ledger and `tinyarms stats`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from conftest import SERVER_DIR
from faultserver import FaultServer
from model_server import llama_server as serve_llama
from tinyarms import tiers
from tinyarms.config import Config
from tinyarms.config.validate import validate
from tinyarms.tiers import costs, trace

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extras are not installed")

PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """run_role pools one HTTP client per event loop; each test's loop closes its own."""
    yield
    await tiers.aclose()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_llama(tmp_path_factory, "embedded:smollm2-135m", "smollm2")


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("STATE", "DATA", "CACHE"):
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(tmp_path / kind.lower()))
    tiers.reset_cooldowns()


def config_for(url: str, *, fallback_from: str | None = None) -> Config:
    local_server = {"provider": "openai", "base_url": url, "model": "smollm2", "max_tokens": 12, "price": PRICE}
    data: dict[str, object] = {"tiers": {"team": local_server}, "roles": {"chat": {"tier": "team"}}}
    if fallback_from:
        data["tiers"] = {
            "broken": {"provider": "openai", "base_url": fallback_from, "model": "500"},
            "team": local_server,
        }
        data["roles"] = {"chat": {"tier": "broken", "escalate_to": ["team"]}}
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


async def test_run_role_streams_a_real_answer_with_cost(llama_server: str, isolated: None) -> None:
    deltas: list[str] = []
    answer = await asyncio.wait_for(
        tiers.run_role(
            config_for(llama_server),
            "chat",
            [{"role": "user", "content": "Name one colour of the sky."}],
            on_delta=deltas.append,
        ),
        120,
    )
    assert answer.text.strip() and len(deltas) > 1 and "".join(deltas) == answer.text
    assert (answer.tier, answer.model) == ("team", "smollm2")
    assert 0 < answer.usage.completion_tokens <= 12 and answer.usage.prompt_tokens > 0
    # llama-cpp-python's server sends no usage when streaming: tinyarms counts, and says so.
    step = answer.trace["steps"][0]
    assert step["usage"] == "estimated" and step["price"] == "config"
    expected = (answer.usage.prompt_tokens * 3.0 + answer.usage.completion_tokens * 15.0) / 1e6
    assert answer.cost_usd == pytest.approx(expected) and answer.cost_usd > 0
    assert costs.spent("chat").day == pytest.approx(expected)
    assert list(trace.read())[-1]["cost_usd"] == pytest.approx(expected, abs=1e-8)


async def test_falls_back_from_a_failing_server_to_the_real_one(llama_server: str, isolated: None) -> None:
    with FaultServer() as fault:
        answer = await asyncio.wait_for(
            tiers.run_role(
                config_for(llama_server, fallback_from=fault.url), "chat", [{"role": "user", "content": "Say hi."}]
            ),
            120,
        )
    assert answer.tier == "team" and answer.text.strip()
    assert [s["outcome"] for s in answer.trace["steps"]] == ["error", "ok"]


def test_tinyarms_ask_and_stats_end_to_end(llama_server: str, env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(SERVER_DIR)}
    user_file = Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(
        f"""
[tiers.team]
provider = "openai"
base_url = "{llama_server}"
model = "smollm2"
max_tokens = 12
temperature = 0.0
price = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }}

[roles.chat]
tier = "team"
escalate_to = []
"""
    )

    def tinyarms(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "tinyarms", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)

    streamed = tinyarms("ask", "What is a Python list?", "--role", "chat")
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.strip() and "on team (smollm2)" in streamed.stderr

    as_json = tinyarms("ask", "Name a fruit.", "--json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["text"].strip() and result["tier"] == "team" and result["cost_usd"] > 0
    assert result["decision"]["role"] == "chat" and result["trace"]["cache"] == "miss"
    assert result["trace"]["completion_tokens"] == result["usage"]["completion_tokens"] > 0

    repeat = json.loads(tinyarms("ask", "Name a fruit.", "--json").stdout)  # temperature 0: the cache answers
    assert repeat["trace"]["cache"] == "hit" and repeat["text"] == result["text"] and repeat["cost_usd"] == 0

    stats = tinyarms("stats", "--since", "1h", "--json")
    assert stats.returncode == 0, stats.stderr
    chat = json.loads(stats.stdout)["roles"]["chat"]
    assert chat["calls"] == 3 and chat["cache_hits"] == 1 and chat["cost_usd"] > 0
    assert chat["tiers"]["team"]["latency_p50_ms"] > 0
    table = tinyarms("stats")
    assert "team" in table.stdout and "3 requests" in table.stdout

    cleared = tinyarms("cache", "clear")
    assert cleared.returncode == 0 and "removed 2 cached answers" in cleared.stdout  # both questions
    assert "removed 0 cached answers" in tinyarms("cache", "clear").stdout


async def test_local_tier_answers_through_the_model_manager_and_escalates(llama_server: str, isolated: None) -> None:
    """The llama-cpp tier through tinyarms.local_model (issue 3; skipped on a branch without it)."""
    pytest.importorskip("tinyarms.local_model")
    data = {
        "tiers": {
            "local": {
                "provider": "llama-cpp",
                "model": "embedded:smollm2-135m",
                "n_ctx": 1024,
                "n_threads": 2,
                "max_tokens": 16,
            },
            "team": {"provider": "openai", "base_url": llama_server, "model": "smollm2", "max_tokens": 16},
        },
        "roles": {"chat": {"tier": "local", "escalate_to": ["team"]}},
    }
    config, problems = validate(data, {})
    assert config is not None, problems
    question = [{"role": "user", "content": "Name one colour of the sky."}]
    answer = await asyncio.wait_for(tiers.run_role(config, "chat", question), 180)
    assert answer.tier == "local" and answer.text.strip() and answer.cost_usd == 0
    assert answer.usage.completion_tokens > 0 and answer.trace["steps"][0]["price"] == "local"
    # No answer has a mean log-prob above 0: the local answer escalates when the model reports them.
    config.roles.chat.cascade.min_mean_logprob = 0.0
    escalated = await asyncio.wait_for(tiers.run_role(config, "chat", question), 180)
    first = escalated.trace["steps"][0]
    if "mean_logprob" in first:
        assert first["outcome"] == "escalated" and escalated.tier == "team"
    else:
        assert escalated.tier == "local"
