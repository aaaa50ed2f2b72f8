"""The request path under bad keys, broken stores and hostile uris (issue 12), over real sockets.

- A non-ASCII character in an API key raised UnicodeEncodeError out of httpx, outside the
  tier error handling, so the next tier was never tried.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from faultserver import FaultServer
from tinyarms import tiers
from tinyarms.config import Config
from tinyarms.config.validate import validate

QUESTION = [{"role": "user", "content": "What does this function return?"}]


@pytest.fixture(autouse=True)
def isolated(fresh_tiers: None, fault_server: FaultServer) -> None:
    fault_server.reset()


def chain_config(fault_server: FaultServer, first: dict[str, Any], **tables: Any) -> Config:
    data: dict[str, Any] = {
        "tiers": {
            "a": {"provider": "openai", "base_url": fault_server.url, "model": "ok", "max_retries": 0, **first},
            "b": {"provider": "openai", "base_url": fault_server.url, "model": "ok", "max_retries": 0},
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
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("TINYARMS_TEST_ODD_KEY", key)
    answer = await ask(chain_config(fault_server, {"api_key_env": "TINYARMS_TEST_ODD_KEY"}))
    assert answer.tier == "b"
    reason = answer.trace["steps"][0]["reason"]
    assert "TINYARMS_TEST_ODD_KEY" in reason and "header" in reason
    assert key.strip() not in reason and key.strip()[3:] not in reason  # never the key itself
    assert [entry["auth"] for entry in fault_server.log] == [False]  # only tier b was asked, without a key


# -- optional stores -------------------------------------------------------------------------

PRICE = {"input_per_mtok": 1_000_000.0, "output_per_mtok": 1_000_000.0}  # $1 a token
GARBAGE = b"this is not an SQLite file\n" * 100


def store(tmp_path: Path, kind: str, name: str) -> Path:
    return tmp_path / kind / "tinyarms" / name


@pytest.mark.parametrize("broken", ["corrupt file", "folder is a file"])
async def test_a_broken_response_cache_costs_the_cache_not_the_answer(
    fault_server: FaultServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    if broken == "corrupt file":
        path = store(tmp_path, "cache", "responses.sqlite")
        path.parent.mkdir(parents=True)
        path.write_bytes(GARBAGE)
    else:
        (tmp_path / "not-a-folder").write_text("a file where the cache folder should be")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    config = chain_config(fault_server, {"temperature": 0.0}, cache={"enabled": True})
    first, second = await ask(config), await ask(config)
    assert first.text and second.text == first.text
    assert len(fault_server.log) == 2  # no cache: both asked the fault_server
    warnings = [r for r in caplog.records if "response cache" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # warned once


async def test_a_corrupt_spend_ledger_is_moved_aside_and_the_budget_still_holds(
    fault_server: FaultServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = store(tmp_path, "data", "spend.sqlite")
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(GARBAGE)
    config = chain_config(fault_server, {"price": PRICE}, budgets={"daily_usd": 2.0, "on_exceeded": "refuse"})
    first = await ask(config)
    assert first.cost_usd > 2.0
    [aside] = list(ledger.parent.glob("spend.sqlite.corrupt-*"))
    assert aside.read_bytes() == GARBAGE  # kept for inspection
    assert any("spend ledger" in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert tiers.costs.spent("chat").day == pytest.approx(first.cost_usd)  # the new ledger counts
    fault_server.reset()
    with pytest.raises(tiers.BudgetExceeded):
        await ask(config)
    assert fault_server.log == []


async def test_a_ledger_that_cannot_be_written_still_enforces_the_budget(
    fault_server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data-file").write_text("a file where the data folder should be")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-file"))
    config = chain_config(fault_server, {"price": PRICE}, budgets={"daily_usd": 2.0, "on_exceeded": "refuse"})
    assert (await ask(config)).cost_usd > 2.0
    assert any("counting spend in memory" in r.getMessage() for r in caplog.records)
    fault_server.reset()
    with pytest.raises(tiers.BudgetExceeded):
        await ask(config)
    assert fault_server.log == []
