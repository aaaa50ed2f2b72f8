"""Replicas against real model servers: two `python -m llama_cpp.server` processes serving the
embedded Gemma 3 270M on 127.0.0.1 as one tier (`base_urls`). Requests spread over both (each
server's own access log counts them), `tinyarms stats` shows each, and a replica that is
stopped is skipped, then used again once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import run_tinyarms
from model_server import Served, serve
from tinyarms import tiers
from tinyarms.config import Config
from tinyarms.config.validate import validate

pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extras are not installed")

# A base model follows the alpaca transcript; without --interrupt_requests False, llama_cpp.server
# cuts a streaming answer short whenever another request arrives (its default).
SERVER_ARGS = ("--chat_format", "alpaca", "--interrupt_requests", "False")
QUESTION = "Name one thing a Python list can hold."


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Served]]:
    started: list[Served] = []
    try:
        for _ in range(2):
            started.append(serve(tmp_path_factory, "embedded:gemma3-270m", "gemma3", *SERVER_ARGS))
        yield started
    finally:
        for served in started:
            served.stop()


@pytest.fixture(autouse=True)
async def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    tiers.reset_cooldowns()
    yield
    tiers.reset_cooldowns()
    await tiers.aclose()


def make_config(replicas: list[Served], **reliability: Any) -> Config:
    team = {"provider": "openai", "base_urls": [r.url for r in replicas], "model": "gemma3", "max_tokens": 8}
    data = {
        "tiers": {"team": {**team, "temperature": 0.0, "timeout_s": 120.0}},
        "roles": {"chat": {"tier": "team"}},
        "reliability": {"backoff_base_s": 0.05, **reliability},
        "cache": {"enabled": False},
    }
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


async def ask(config: Config, n: int = 0) -> tiers.Answer:
    messages = [{"role": "user", "content": f"{QUESTION} ({n})"}]
    return await asyncio.wait_for(tiers.run_role(config, "chat", messages), 240)


async def test_requests_spread_over_real_replicas_and_stats_show_each(
    replicas: list[Served], env: dict[str, str], tmp_path: Path
) -> None:
    before = [r.requests() for r in replicas]
    answers = await asyncio.gather(*(ask(make_config(replicas), n) for n in range(4)))
    sent = [r.requests() - b for r, b in zip(replicas, before, strict=True)]
    assert sent == [2, 2]  # four at once, least in flight first: two each, by the servers' own logs
    assert all(a.text.strip() for a in answers)
    answered_by = sorted(str(a.trace["steps"][0]["replica"]) for a in answers)
    assert answered_by == sorted([replicas[0].url] * 2 + [replicas[1].url] * 2)
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    shown = run_tinyarms(env, "stats")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[1]: line.split() for line in shown.stdout.splitlines() if line.startswith("team ")}
    for replica in replicas:
        requests, errors, p50, p95 = rows[replica.url][2:6]
        assert (requests, errors) == ("2", "0") and float(p50) > 0 and float(p95) >= float(p50)


async def test_a_stopped_replica_is_skipped_and_used_again_once_back(replicas: list[Served]) -> None:
    config = make_config(replicas, cooldown_failures=1, cooldown_s=2.0)
    up, down = replicas
    down.stop()
    before = up.requests()
    for n in range(3):
        answer = await ask(config, n)  # a pick of the stopped one fails over at once
        assert answer.text.strip() and answer.trace["steps"][0]["replica"] == up.url
    assert up.requests() - before == 3
    down.restart()  # loading the model takes longer than the 2 s cooldown
    before = down.requests()
    for n in range(12):
        answer = await ask(config, n)
        if down.requests() > before:
            break
    assert down.requests() > before and answer.trace["steps"][0]["replica"] == down.url
