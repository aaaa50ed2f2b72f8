"""The request path under bad keys, broken stores and hostile uris (issue 12), over real sockets.

- A non-ASCII character in an API key raised UnicodeEncodeError out of httpx, outside the
  tier error handling, so the next tier was never tried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from faultserver import FaultServer
from tinyarms import tiers
from tinyarms.config import Config
from tinyarms.config.validate import validate

QUESTION = [{"role": "user", "content": "What does this function return?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: FaultServer) -> Iterator[None]:
    for kind in ("STATE", "DATA", "CACHE"):
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(tmp_path / kind.lower()))
    tiers.reset_cooldowns()
    server.reset()
    yield
    tiers.reset_cooldowns()


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    await tiers.aclose()


def chain_config(server: FaultServer, first: dict[str, Any], **tables: Any) -> Config:
    data: dict[str, Any] = {
        "tiers": {
            "a": {"provider": "openai", "base_url": server.url, "model": "ok", "max_retries": 0, **first},
            "b": {"provider": "openai", "base_url": server.url, "model": "ok", "max_retries": 0},
        },
        "roles": {"chat": {"tier": "a", "escalate_to": ["b"]}},
        **tables,
    }
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


async def ask(config: Config) -> tiers.Answer:
    return await asyncio.wait_for(tiers.run_role(config, "chat", QUESTION), 30)


@pytest.mark.parametrize("key", ["sk-caf\u00e9", "sk-\u200bzero-width", "sk-line\nbreak"])
async def test_a_key_no_header_can_carry_is_a_tier_error_and_the_next_tier_answers(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("TINYARMS_TEST_ODD_KEY", key)
    answer = await ask(chain_config(server, {"api_key_env": "TINYARMS_TEST_ODD_KEY"}))
    assert answer.tier == "b"
    reason = answer.trace["steps"][0]["reason"]
    assert "TINYARMS_TEST_ODD_KEY" in reason and "header" in reason
    assert key.strip() not in reason and key.strip()[3:] not in reason  # never the key itself
    assert [entry["auth"] for entry in server.log] == [False]  # only tier b was asked, without a key
