"""Autocomplete from a remote OpenAI-compatible `/v1/completions` (vLLM, Ollama, llama-server
all serve one) with a FIM prompt from templates.py, end to end: the real tinyarms over
stdio as VS Code and Neovim ask, and a real `python -m llama_cpp.server` serving the
embedded Gemma 3 270M on 127.0.0.1 (one per module). Gemma has no FIM tokens, so the tier
names the `prefix-only` template: the prompt is the one the local engine would send.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pytest_lsp import LanguageClient

from conftest import CLIENTS
from faultserver import FaultServer
from model_server import llama_server as serve_llama
from remote_fim import end_of, model_status, open_doc, remote_status, start, suggest, type_text, user_file
from tinyarms.autocomplete.engine import CompletionRequest
from tinyarms.autocomplete.start import start_engine
from tinyarms.config.validate import validate

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extras are not installed")
pytestmark = pytest.mark.asyncio(loop_scope="module")

BUDGET = {"max_latency_ms": 30000}  # the local model's cold answer takes seconds on a busy machine
PREFIX = "import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f.re"


@pytest.fixture(scope="module")
def completions_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve_llama(tmp_path_factory, "embedded:gemma3-270m", "gemma")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CLIENTS)
async def lsp(
    request: pytest.FixtureRequest, completions_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LanguageClient]:
    tier = {"provider": "openai", "base_url": completions_server, "model": "gemma", "template": "prefix-only"}
    # Generous budget and wait: what is checked is where the text comes from, not the speed
    # (scripts/bench_remote_fim.py measures that).
    role = {"max_latency_ms": 30000, "remote_wait_ms": 25000}
    client = await start(tmp_path_factory.mktemp("completions"), request.param, user_file(tier, role))
    yield client
    await client.shutdown_session()


async def test_a_completion_arrives_from_v1_completions(
    lsp: LanguageClient, completions_server: str, tmp_path: Path
) -> None:
    uri = open_doc(lsp, tmp_path / "read.py", PREFIX)
    text = await suggest(lsp, uri, end_of(PREFIX))
    assert text.startswith("re") and len(text) > 2 and "\n" not in text, text
    # What the server itself answers for the prompt prefix-only makes (greedy: the same text).
    direct = httpx.post(
        f"{completions_server}/completions",
        json={"model": "gemma", "prompt": PREFIX, "max_tokens": 24, "temperature": 0, "stop": ["\n"]},
        timeout=120,
    ).json()["choices"][0]["text"]
    assert direct.strip() and text.startswith("re" + direct[:6]), (text, direct)
    remote = await remote_status(lsp)
    assert (remote["tier"], remote["endpoint"]) == ("gpu", "completions")
    assert remote["counts"].get("remote", 0) >= 1, remote
    assert not any(key.startswith("local_") for key in remote["counts"]), remote
    state = await model_status(lsp)
    assert state["last_generation"].get("tier") == "gpu", state["last_generation"]


async def test_typing_through_a_remote_suggestion_answers_from_the_cache(lsp: LanguageClient, tmp_path: Path) -> None:
    uri = open_doc(lsp, tmp_path / "through.py", PREFIX)
    first = await suggest(lsp, uri, end_of(PREFIX))
    rest = first[2:]  # the item repeats the word typed so far ("re")
    assert re.match(r"\w", rest), first
    before = (await remote_status(lsp))["counts"].get("remote", 0)
    type_text(lsp, uri, 2, end_of(PREFIX), rest[0])
    second = await suggest(lsp, uri, end_of(PREFIX + rest[0]))
    assert second == first  # the same suggestion: the word typed so far, then the rest
    assert (await remote_status(lsp))["counts"].get("remote", 0) == before  # no new request
    assert (await model_status(lsp))["counts"].get("answer_cache", 0) >= 1


async def test_a_slow_remote_falls_back_to_the_local_model_then_cools_down(tmp_path: Path) -> None:
    """A remote that sends nothing (tests/faultserver.py `slow`: a first byte past any deadline)
    is given `remote_wait_ms`, then the local model answers in the same request; after
    `cooldown_failures` slow answers in a row the next keystrokes do not ask it at all."""
    with FaultServer() as fault:
        tier = {"provider": "openai", "base_url": fault.url, "model": "slow", "template": "prefix-only"}
        data: dict[str, Any] = {
            "tiers": {"local": {"provider": "llama-cpp", "model": "embedded:gemma3-270m"}, "gpu": tier},
            "roles": {"autocomplete": {"tier": "gpu", "escalate_to": ["local"], "remote_wait_ms": 300, **BUDGET}},
            "reliability": {"cooldown_failures": 2, "cooldown_s": 60},
        }
        config, problems = validate(data, {})
        assert config is not None, problems
        engine = await start_engine(config)
        assert engine.remote is not None
        try:
            lines = PREFIX.split("\n")
            answers = []
            for doc in ("a.py", "b.py", "c.py"):  # three places the cache cannot answer
                answers.append(await engine.complete(CompletionRequest(lines, 5, len(lines[5]), doc=doc)))
            assert all(a.text for a in answers), answers  # the local model answered each time
            assert answers[0].elapsed_ms >= 300 and answers[1].elapsed_ms >= 300  # the remote had its wait
            counts = engine.remote.counts
            assert counts["local_slow"] == 2 and counts["local_cooldown"] == 1, counts
            assert engine.remote.cooling()
            # The server saw exactly the two requests (the third was never sent), and both
            # connections were closed by tinyarms when it gave up on them.
            assert [e["path"] for e in fault.log] == ["/v1/completions"] * 2, fault.log
        finally:
            await engine.remote.aclose()
            await engine.model.shutdown()
