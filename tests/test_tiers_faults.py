"""tiers.run_role against a real loopback server with scripted faults (tests/faultserver.py):
retries, Retry-After, cooldown, fallback order, deadlines, stream cuts, malformed answers,
cascade, budgets and the response cache. No mocked HTTP: every byte crosses a socket."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from faultserver import FaultServer, closed_port
from tinyarms import tiers
from tinyarms.backends import Usage
from tinyarms.config import Config, Tier
from tinyarms.config.validate import validate
from tinyarms.local_model.manager import all_models
from tinyarms.tiers import costs, trace

QUESTION = [{"role": "user", "content": "What does this function return?"}]


@pytest.fixture(autouse=True)
def isolated(fresh_tiers: None, fault_server: FaultServer) -> None:
    fault_server.reset()


def make_config(fault_server: FaultServer, chain: list[tuple[str, dict[str, Any]]], **tables: Any) -> Config:
    """Tiers named a, b, c... in chain order, each an OpenAI (default) or Anthropic tier on the server."""
    data: dict[str, Any] = {
        "tiers": {},
        "roles": {"chat": {"tier": chain[0][0], "escalate_to": [n for n, _ in chain[1:]]}},
    }
    for name, settings in chain:
        tier = {"provider": "openai", "base_url": fault_server.url, "max_retries": 0, "timeout_s": 5.0}
        tier.update(settings)
        data["tiers"][name] = tier
    role_settings = tables.pop("chat", {})
    data["roles"]["chat"].update(role_settings)
    data.update(tables)
    data.setdefault("reliability", {}).setdefault("backoff_base_s", 0.05)
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


class Screen:
    """What an editor would show: deltas appended, a restart clears."""

    def __init__(self) -> None:
        self.text = ""
        self.restarts: list[str] = []

    def delta(self, text: str) -> None:
        self.text += text

    def restart(self, reason: str) -> None:
        self.restarts.append(reason)
        self.text = ""


async def ask(config: Config, screen: Screen | None = None, **kwargs: Any) -> tiers.Answer:
    screen = screen or Screen()
    # Every request must end on its own; this bound only turns a hang into a failure.
    return await asyncio.wait_for(
        tiers.run_role(config, "chat", QUESTION, on_delta=screen.delta, on_restart=screen.restart, **kwargs), 30
    )


def models_asked(fault_server: FaultServer) -> list[str]:
    return [entry["model"] for entry in fault_server.log]


async def test_openai_and_anthropic_stream_an_answer_with_usage(fault_server: FaultServer) -> None:
    for provider in ("openai", "anthropic"):
        price = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
        config = make_config(fault_server, [("a", {"provider": provider, "model": "ok", "price": price})])
        screen = Screen()
        answer = await ask(config, screen)
        assert answer.text == screen.text == "Answer from ok."
        assert (answer.tier, answer.model) == ("a", "ok")
        assert answer.usage.completion_tokens == 4 and answer.usage.prompt_tokens > 0
        expected = (answer.usage.prompt_tokens * 1.0 + 4 * 2.0) / 1e6
        assert answer.cost_usd == pytest.approx(expected)
        assert answer.trace["steps"][0]["outcome"] == "ok"
    records = list(trace.read())
    assert [r["tier"] for r in records] == ["a", "a"]
    assert costs.spent("chat").day == pytest.approx(sum(r["cost_usd"] for r in records))


async def test_anthropic_marks_system_and_context_for_prompt_caching(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"provider": "anthropic", "model": "ok"})])
    messages = [{"role": "system", "content": "You are terse."}, *QUESTION]
    answer = await tiers.run_role(config, "chat", messages, context="def f():\n    return 1\n")
    assert answer.text == "Answer from ok."
    assert fault_server.log[-1]["cache_control"] == 2


async def test_429_honours_retry_after_then_answers(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "429/1", "max_retries": 2})])
    started = time.monotonic()
    answer = await ask(config)
    assert answer.tier == "a" and answer.text == "Answer from 429/1."
    assert time.monotonic() - started >= 0.9  # Retry-After: 1 was waited out, not the 50 ms backoff
    step = answer.trace["steps"][0]
    assert step["attempts"] == 2 and step["errors"] == ["rate_limit"]


async def test_500_is_retried_a_bounded_number_of_times_then_falls_back_in_order(fault_server: FaultServer) -> None:
    config = make_config(
        fault_server, [("a", {"model": "500", "max_retries": 2}), ("b", {"model": "500"}), ("c", {"model": "ok"})]
    )
    answer = await ask(config)
    assert answer.tier == "c"
    assert models_asked(fault_server) == ["500", "500", "500", "500", "ok"]  # a three times (2 retries), b once, c
    kinds = [(s["tier"], s["outcome"], s.get("kind")) for s in answer.trace["steps"]]
    assert kinds == [("a", "error", "server"), ("b", "error", "server"), ("c", "ok", None)]


async def test_connect_refused_falls_back(fault_server: FaultServer) -> None:
    config = make_config(
        fault_server,
        [
            ("a", {"model": "ok", "base_url": f"http://127.0.0.1:{closed_port()}/v1", "max_retries": 1}),
            ("b", {"model": "ok"}),
        ],
    )
    answer = await ask(config)
    assert answer.tier == "b"
    assert answer.trace["steps"][0]["errors"] == ["connect", "connect"]


async def test_slow_first_byte_past_the_tier_timeout_falls_back(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "slow", "timeout_s": 0.5}), ("b", {"model": "ok"})])
    answer = await ask(config)
    assert answer.tier == "b"
    assert answer.trace["steps"][0]["kind"] == "timeout"


async def test_request_deadline_ends_the_whole_chain_with_a_clear_error(fault_server: FaultServer) -> None:
    chain = [("a", {"model": "slow"}), ("b", {"model": "slow"})]
    config = make_config(fault_server, chain, reliability={"deadline_s": 0.6})
    with pytest.raises(tiers.AllTiersFailed) as failed:
        await ask(config)
    assert "every tier of role 'chat' failed" in str(failed.value)
    assert "did not finish within" in str(failed.value)
    assert failed.value.trace["error"] == "all_tiers_failed"
    assert failed.value.trace["latency_ms"] < 5000  # bounded by the deadline, not by the 60 s fault_server stall


async def test_stream_cut_after_text_was_shown_restarts_the_answer(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "cut"}), ("b", {"provider": "anthropic", "model": "ok"})])
    screen = Screen()
    answer = await ask(config, screen)
    assert answer.tier == "b"
    assert len(screen.restarts) == 1 and "closed the connection mid-answer" in screen.restarts[0]
    assert screen.text == answer.text == "Answer from ok."  # never "Answer from Answer from ok."


async def test_stream_cut_retried_on_the_same_tier(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"provider": "anthropic", "model": "cut/1", "max_retries": 1})])
    screen = Screen()
    answer = await ask(config, screen)
    assert answer.tier == "a" and screen.text == answer.text == "Answer from cut/1."
    assert len(screen.restarts) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(("fault", "kind"), [("badjson", "malformed"), ("schema", "malformed"), ("empty", "empty")])
async def test_malformed_answers_are_tier_failures(
    fault_server: FaultServer, provider: str, fault: str, kind: str
) -> None:
    config = make_config(fault_server, [("a", {"provider": provider, "model": fault}), ("b", {"model": "ok"})])
    screen = Screen()
    answer = await ask(config, screen)
    assert answer.tier == "b" and screen.text == "Answer from ok."
    assert answer.trace["steps"][0]["kind"] == kind


async def test_three_failures_cool_a_tier_down(fault_server: FaultServer) -> None:
    config = make_config(
        fault_server,
        [("a", {"model": "500"}), ("b", {"model": "ok"})],
        reliability={"cooldown_failures": 3, "cooldown_s": 60},
    )
    for _ in range(4):
        answer = await ask(config)
        assert answer.tier == "b"
    # a is asked three times, then skipped: the fourth request goes straight to b.
    assert models_asked(fault_server) == ["500", "ok", "500", "ok", "500", "ok", "ok"]
    assert answer.trace["steps"][0]["kind"] == "cooldown"
    tiers.reset_cooldowns()
    await ask(config)
    assert models_asked(fault_server)[-2:] == ["500", "ok"]


async def test_missing_key_names_the_variable_and_falls_back(
    fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TINYARMS_TEST_NO_SUCH_KEY", raising=False)
    config = make_config(
        fault_server, [("a", {"model": "ok", "api_key_env": "TINYARMS_TEST_NO_SUCH_KEY"}), ("b", {"model": "ok"})]
    )
    answer = await ask(config)
    assert answer.tier == "b"
    reason = answer.trace["steps"][0]["reason"]
    assert "TINYARMS_TEST_NO_SUCH_KEY" in reason and "not set" in reason
    assert models_asked(fault_server) == ["ok"]  # nothing was sent without the key


async def test_every_tier_failing_is_one_clear_error(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "500"}), ("b", {"provider": "anthropic", "model": "badjson"})])
    with pytest.raises(tiers.AllTiersFailed) as failed:
        await ask(config)
    message = str(failed.value)
    assert "tier 'a' had a server error (HTTP 500)" in message
    assert "tier 'b' sent invalid JSON" in message
    assert list(trace.read())[-1]["error"] == "all_tiers_failed"


async def test_cancellation_closes_the_stream_and_is_traced(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "slow", "timeout_s": 30})])
    task = asyncio.create_task(tiers.run_role(config, "chat", QUESTION))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(trace.read())[-1]["error"] == "cancelled"


async def test_cascade_escalates_on_low_logprob(fault_server: FaultServer) -> None:
    config = make_config(
        fault_server,
        [("a", {"model": "lowconf"}), ("b", {"model": "ok"})],
        chat={"cascade": {"min_mean_logprob": -1.0}},
    )
    screen = Screen()
    answer = await ask(config, screen)
    assert answer.tier == "b" and screen.text == "Answer from ok."
    first = answer.trace["steps"][0]
    assert first["outcome"] == "escalated" and first["mean_logprob"] == pytest.approx(-4.0)
    assert answer.trace["escalations"] == 1 and len(screen.restarts) == 1
    # A confident answer stays on the cheap tier.
    config.tiers["a"].model = "ok"
    assert (await ask(config)).tier == "a"


async def test_cascade_self_check_and_step_cap(fault_server: FaultServer) -> None:
    chain = [("a", {"model": "selfno"}), ("b", {"model": "selfno"}), ("c", {"model": "ok"})]
    config = make_config(fault_server, chain, chat={"cascade": {"self_check": True, "max_steps": 1}})
    answer = await ask(config)
    # a fails its self-check and escalates; the cap (1 step) then stops at b, whose answer stands.
    assert answer.tier == "b"
    outcomes = [(s["tier"], s["outcome"], s.get("self_check")) for s in answer.trace["steps"]]
    assert outcomes == [("a", "escalated", "fail"), ("b", "ok", None)]
    assert "c" not in [s["tier"] for s in answer.trace["steps"]]


async def test_escalated_answer_stands_when_every_later_tier_fails(fault_server: FaultServer) -> None:
    config = make_config(
        fault_server,
        [("a", {"model": "lowconf"}), ("b", {"model": "500"})],
        chat={"cascade": {"min_mean_logprob": -1.0}},
    )
    screen = Screen()
    answer = await ask(config, screen)
    assert answer.tier == "a" and screen.text == "Answer from lowconf."
    assert "kept" in answer.trace


async def test_budget_refuses_paid_tiers_once_spent(fault_server: FaultServer) -> None:
    price = {"input_per_mtok": 1_000_000.0, "output_per_mtok": 1_000_000.0}  # $1 a token
    config = make_config(
        fault_server, [("a", {"model": "ok", "price": price})], budgets={"daily_usd": 2.0, "on_exceeded": "refuse"}
    )
    first = await ask(config)
    assert first.cost_usd > 2.0
    fault_server.reset()
    with pytest.raises(tiers.BudgetExceeded) as refused:
        await ask(config)
    assert "daily budget of $2.00 is spent" in str(refused.value)
    assert fault_server.log == []  # nothing more was spent


async def test_budget_falls_back_to_a_free_tier_and_warns(fault_server: FaultServer) -> None:
    paid = {"model": "ok", "price": {"input_per_mtok": 1_000_000.0, "output_per_mtok": 0.0}}
    free = {"model": "ok", "price": {"input_per_mtok": 0.0, "output_per_mtok": 0.0}}
    config = make_config(
        fault_server,
        [("a", paid), ("b", free)],
        budgets={"roles": {"chat": {"daily_usd": 100.0}}, "on_exceeded": "local"},
    )
    costs.record("chat", "a", Usage(prompt_tokens=85), 85.0)
    answer = await ask(config)
    assert answer.tier == "a" and "85% of the daily budget of role 'chat'" in answer.trace["budget_warning"]
    costs.record("chat", "a", Usage(prompt_tokens=20), 20.0)
    fault_server.reset()
    answer = await ask(config)
    assert answer.tier == "b" and answer.trace["steps"][0]["kind"] == "budget"
    assert len(fault_server.log) == 1


async def test_cache_serves_a_repeat_only_when_deterministic(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "ok", "temperature": 0.0})])
    first = await ask(config)
    screen = Screen()
    second = await ask(config, screen)
    assert first.trace["cache"] == "miss" and second.trace["cache"] == "hit"
    assert second.text == screen.text == first.text and second.cost_usd == 0
    assert len(fault_server.log) == 1
    other_context = await ask(config, context="a different file")
    assert other_context.trace["cache"] == "miss"

    config.tiers["a"].temperature = 0.7
    fault_server.reset()
    await ask(config)
    await ask(config)
    assert len(fault_server.log) == 2  # sampling: answers are not reused
    assert (await ask(config)).trace["cache"] == "off"


async def test_cache_file_holds_no_request_text(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "ok", "temperature": 0.0})])
    marker = "zebra-quokka-question"
    await tiers.run_role(config, "chat", [{"role": "user", "content": marker}])
    from tinyarms.tiers.cache import cache_path

    assert cache_path().is_file()
    assert marker.encode() not in b"".join(p.read_bytes() for p in cache_path().parent.glob("responses.sqlite*"))
    assert marker not in trace.trace_path().read_text()


async def test_trace_lines_are_whole_json(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "ok"})])
    for _ in range(3):
        await tiers.run_role(config, "chat", QUESTION)
    lines = trace.trace_path().read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["role"] == "chat" for line in lines)
    summary = trace.stats(list(trace.read(since_s=3600)))
    assert summary["roles"]["chat"]["calls"] == 3 and summary["roles"]["chat"]["tiers"]["a"]["calls"] == 3


async def test_an_explicit_tier_goes_first_and_the_role_chain_backs_it_up(fault_server: FaultServer) -> None:
    config = make_config(fault_server, [("a", {"model": "500"}), ("b", {"model": "ok"}), ("c", {"model": "schema"})])
    answer = await ask(config, tier="c")
    assert [s["tier"] for s in answer.trace["steps"]] == ["c", "a", "b"]
    assert answer.tier == "b" and answer.trace["requested_tier"] == "c"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_streams_are_read_to_the_end_so_connections_are_reused(fault_server: FaultServer, provider: str) -> None:
    config = make_config(fault_server, [("a", {"provider": provider, "model": "ok"})])
    await tiers.aclose()  # start from an empty pool
    fault_server.reset()
    for _ in range(5):
        assert (await ask(config)).text == "Answer from ok."
    assert fault_server.connections == 1


async def test_spent_budget_sends_the_request_to_a_local_tier(fault_server: FaultServer) -> None:
    price = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}
    config = make_config(fault_server, [("a", {"model": "ok", "price": price})], budgets={"daily_usd": 1.0})
    config.tiers["local"] = Tier(provider="llama-cpp", model="embedded:smollm2-135m", n_threads=1)
    costs.record("chat", "a", Usage(prompt_tokens=1), 1.5)
    try:
        answer = await ask(config)
    finally:
        for model in all_models():  # the local tier's child process ends with this test's loop
            await model.shutdown()
    steps = answer.trace["steps"]
    assert [(s["tier"], s.get("kind")) for s in steps][0] == ("a", "budget")
    assert steps[1]["tier"] == "local" and steps[1]["outcome"] == "ok" and fault_server.log == []
    assert answer.tier == "local" and answer.text.strip() and answer.cost_usd == 0
