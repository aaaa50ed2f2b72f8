"""A tier with several replicas (`base_urls`) against real loopback servers (tests/faultserver.py):
requests spread by least in-flight, a dead replica is skipped and comes back after its
cooldown, 429/503 with Retry-After hold a replica (no request reaches it before the time), and
`tinyarms stats` shows each replica. Counts and times come from the servers' own logs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import run_tinyarms
from faultserver import FaultServer, closed_port
from tinyarms import tiers
from tinyarms.config import Config
from tinyarms.config.validate import validate
from tinyarms.tiers import trace

QUESTION = [{"role": "user", "content": "What does this function return?"}]


@pytest.fixture(scope="module")
def servers() -> Iterator[list[FaultServer]]:
    with FaultServer() as a, FaultServer() as b, FaultServer() as c:
        yield [a, b, c]


@pytest.fixture(autouse=True)
async def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, servers: list[FaultServer]) -> AsyncIterator[None]:
    """Own state and data dirs, no cooldowns, empty server logs; this loop's HTTP client closed after."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    tiers.reset_cooldowns()
    for server in servers:
        server.reset()
    yield
    tiers.reset_cooldowns()
    await tiers.aclose()


def make_config(urls: list[str], *, fallback: str | None = None, **reliability: Any) -> Config:
    """Tier `team` on the replicas `urls` (chat's tier); `fallback`: a second tier after it."""
    team = {"provider": "openai", "base_urls": urls, "model": "ok", "max_retries": 2, "timeout_s": 5.0}
    data: dict[str, Any] = {
        "tiers": {"team": team},
        "roles": {"chat": {"tier": "team", "escalate_to": ["spare"] if fallback else []}},
        "reliability": {"backoff_base_s": 0.05, **reliability},
        "cache": {"enabled": False},  # every request must reach a server
    }
    if fallback:
        data["tiers"]["spare"] = {"provider": "openai", "base_url": fallback, "model": "ok", "max_retries": 0}
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


async def ask(config: Config, deltas: list[str] | None = None) -> tiers.Answer:
    on_delta = deltas.append if deltas is not None else None
    return await asyncio.wait_for(tiers.run_role(config, "chat", QUESTION, on_delta=on_delta), 30)


def replica_of(answer: tiers.Answer) -> str:
    return str(answer.trace["steps"][0]["replica"])


async def test_requests_spread_by_least_in_flight_and_streams_work(servers: list[FaultServer]) -> None:
    for index, server in enumerate(servers):
        server.script("ok", [{"text": f"replica {index}", "delay": 0.3}] * 3)
    config = make_config([s.url for s in servers])
    answers = await asyncio.gather(*(ask(config) for _ in range(9)))
    # Nine at once over three replicas: each new request goes to one with the fewest in flight.
    assert [len(s.log) for s in servers] == [3, 3, 3]
    for answer in answers:
        index = int(answer.text.split()[-1])
        assert replica_of(answer) == servers[index].url  # the trace names the replica that answered
    for server in servers:
        server.reset()
    deltas: list[str] = []
    answer = await ask(config, deltas)
    assert answer.text == "Answer from ok." and len(deltas) > 1 and "".join(deltas) == answer.text
    for _ in range(29):
        await ask(config)
    # One at a time every replica has none in flight: ties go at random, so each gets some.
    counts = [len(s.log) for s in servers]
    assert sum(counts) == 30 and min(counts) > 0, counts


async def test_a_dead_replica_is_skipped_then_comes_back_after_its_cooldown(servers: list[FaultServer]) -> None:
    live = servers[0]
    port = closed_port()
    dead_url = f"http://127.0.0.1:{port}/v1"
    config = make_config([dead_url, live.url], cooldown_failures=2, cooldown_s=2.0)
    connect_errors = 0
    for _ in range(40):  # until the dead one has failed twice (a random pick sends there half the time)
        answer = await ask(config)
        assert answer.text == "Answer from ok." and replica_of(answer) == live.url  # failover, not a failure
        connect_errors += answer.trace["steps"][0].get("errors", []).count("connect")
        if connect_errors >= 2:
            break
    assert connect_errors == 2
    out_at = time.monotonic()
    # It comes back up where it was; during its cooldown nothing is sent there.
    with FaultServer(port=port) as revived:
        while time.monotonic() - out_at < 1.5:
            answer = await ask(config)
            assert replica_of(answer) == live.url and answer.trace["steps"][0].get("errors", []) == []
        assert revived.log == []
        await asyncio.sleep(max(0.0, out_at + 2.1 - time.monotonic()))
        for _ in range(30):
            answer = await ask(config)
            if revived.log:
                break
        assert len(revived.log) >= 1 and replica_of(answer) == dead_url


async def test_429_with_retry_after_holds_the_replica_and_the_request_moves_on(servers: list[FaultServer]) -> None:
    busy, other = servers[0], servers[1]
    busy.fault, busy.retry_after = "429", "1.5"
    config = make_config([busy.url, other.url], cooldown_failures=100)
    started = time.monotonic()
    while time.monotonic() - started < 3.5:
        answer = await ask(config)
        assert replica_of(answer) == other.url  # answered without waiting for the busy one
        await asyncio.sleep(0.05)
    times = [entry["at"] for entry in busy.log]
    assert 1 <= len(times) <= 3, times  # ~70 requests in 3.5 s; the busy replica saw at most one per 1.5 s
    assert all(later - earlier >= 1.45 for earlier, later in zip(times, times[1:], strict=False)), times
    assert len(other.log) > 10


async def test_every_replica_held_waits_when_it_fits_the_deadline(servers: list[FaultServer]) -> None:
    a, b = servers[0], servers[1]
    a.fault = b.fault = "429/1"  # each answers its first request with 429, Retry-After: 1
    config = make_config([a.url, b.url])
    started = time.monotonic()
    answer = await ask(config)
    assert answer.text == "Answer from ok." and time.monotonic() - started >= 0.95
    assert answer.trace["steps"][0]["errors"] == ["rate_limit", "rate_limit"]
    for server in (a, b):
        if len(server.log) > 1:  # the one asked again: not before its Retry-After
            assert server.log[1]["at"] - server.log[0]["at"] >= 0.95


async def test_a_wait_past_the_deadline_falls_back_at_once_without_hammering(servers: list[FaultServer]) -> None:
    busy, spare = servers[0], servers[1]
    busy.fault, busy.retry_after = "503", "30"
    config = make_config([busy.url], fallback=spare.url, deadline_s=5.0)
    started = time.monotonic()
    for _ in range(5):
        answer = await ask(config)
        assert answer.tier == "spare"
    assert time.monotonic() - started < 3.0  # nobody sat out the 30 s
    assert len(busy.log) == 1  # 503 Retry-After: 30 held it: the four later requests skipped it


async def test_stats_show_each_replica(servers: list[FaultServer], env: dict[str, str], tmp_path: Path) -> None:
    port = closed_port()
    config = make_config([servers[0].url, servers[1].url, f"http://127.0.0.1:{port}/v1"], cooldown_failures=1000)
    for sent in range(40):  # until the dead one was picked at least once (a third of the time)
        answer = await ask(config)
        if sent >= 11 and "connect" in answer.trace["steps"][0].get("errors", []):
            break
    by_replica = trace.stats(list(trace.read()))["replicas"]["team"]
    for server in servers[:2]:
        assert by_replica[server.url]["requests"] == len(server.log)  # the servers' own counts
        assert by_replica[server.url]["errors"] == {}
    dead = by_replica[f"http://127.0.0.1:{port}/v1"]
    assert dead["answered"] == 0 and dead["errors"] == {"connect": dead["requests"]}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")  # where this test's trace is
    shown = run_tinyarms(env, "stats")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[1]: line.split() for line in shown.stdout.splitlines() if line.startswith("team ")}
    for server in servers[:2]:
        assert rows[server.url][2] == str(len(server.log)) and rows[server.url][3] == "0"


async def test_a_hung_replica_times_out_and_another_answers(servers: list[FaultServer]) -> None:
    hung, ok = servers[0], servers[1]
    hung.fault = "slow"
    config = make_config([hung.url, ok.url])
    config.tiers["team"].timeout_s = 0.5
    for _ in range(30):  # random ties send some to the hung one until it cools down
        answer = await ask(config)
        assert answer.text == "Answer from ok." and replica_of(answer) == ok.url
    assert 1 <= len(hung.log) <= 3  # a timeout counts toward its cooldown (3 in a row): then it is skipped
