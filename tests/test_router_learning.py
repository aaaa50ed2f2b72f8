"""Strong or weak and learning from traffic: the difficulty score, calibration on a trace, fits from the log."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest
import tomllib

from tinyarms.config import ConfigInputs, load_config
from tinyarms.config.edit import ConfigEditError, set_keys
from tinyarms.config.schema import Difficulty
from tinyarms.router import difficulty, strength
from tinyarms.router.calibrate import CalibrationError, calibrate, share_at
from tinyarms.router.decision import Decision

ROUTES = ["explain", "generate", "refactor", "fix", "test", "document", "review", None]


def synthetic_trace(n: int, seed: int, *, role: str = "chat", cheap: str = "cloud-fast") -> list[dict[str, Any]]:
    """Requests whose chance of needing the strong tier grows with size; outcomes drawn from that chance."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for i in range(n):
        route = rng.choice(ROUTES)
        request = int(rng.lognormvariate(3.5, 1.0))
        context = int(rng.lognormvariate(6.0, 1.5)) if rng.random() < 0.6 else 0
        true_p = 1 / (1 + math.exp(-(-4.0 + 0.5 * math.log1p(request) + 0.3 * math.log1p(context))))
        escalated = rng.random() < true_p
        steps = [{"tier": cheap, "outcome": "escalated" if escalated else "ok"}]
        if escalated:
            steps.append({"tier": "cloud-strong", "outcome": "ok"})
        records.append({
            "ts": 1_700_000_000 + i, "id": f"r{i}", "role": role, "route": route, "request_tokens": request,
            "context_tokens": context, "steps": steps, "escalations": int(escalated), "tier": steps[-1]["tier"],
            "prompt_tokens": request + context + 40, "completion_tokens": 200,
            "cost_usd": 0.0004 + (0.006 if escalated else 0.0),
        })  # fmt: skip
    return records


def config_from(tmp_path: Path, text: str = ""):  # type: ignore[no-untyped-def]
    user = tmp_path / "config.toml"
    user.write_text(text)
    result = load_config(ConfigInputs(user_file=user, env={}, workspace=tmp_path))
    assert result.config is not None, result.problems
    return result.config


def test_calibrated_share_holds_on_held_out_lines_of_the_trace() -> None:
    records = synthetic_trace(8000, seed=1)
    fitted, held_out = records[:4000], records[4000:]
    weights = Difficulty()
    for target in (0.1, 0.2, 0.35):
        result = calibrate(
            fitted, role="chat", share=target, weights=weights, cheap_tier="cloud-fast", strong_tier="cloud-strong"
        )
        assert abs(result.after_share - target) <= 0.005  # on the lines it was computed from
        scores = [difficulty.score_record(weights, r) for r in held_out]
        achieved = share_at([s for s in scores if s is not None], result.threshold)
        assert abs(achieved - target) <= 0.02, (target, achieved)
    # Cost projection: from the trace, the strong tier has no requests of its own: "price" is used.
    priced = calibrate(
        fitted, role="chat", share=0.2, weights=weights, cheap_tier="cloud-fast", strong_tier="cloud-strong",
        price=lambda tier, prompt, completion: 0.01 if tier == "cloud-strong" else 0.001,
    )  # fmt: skip
    assert priced.cost_sources == {"cheap": "trace", "strong": "price"}
    assert priced.cost_per_request["strong"] == 0.01
    cheap = priced.cost_per_request["cheap"]
    assert cheap is not None and abs(cheap - sum(r["cost_usd"] for r in fitted) / len(fitted)) < 1e-9
    assert priced.cost_after_usd == pytest.approx(4000 * (0.8 * cheap + 0.2 * 0.01), rel=1e-3)


def test_calibrate_refuses_what_it_cannot_do() -> None:
    with pytest.raises(CalibrationError, match="at least 20"):
        calibrate(synthetic_trace(5, 0), role="chat", share=0.2, weights=Difficulty(), cheap_tier="a", strong_tier="b")
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        calibrate(synthetic_trace(50, 0), role="chat", share=1.5, weights=Difficulty(), cheap_tier="a", strong_tier="b")
    with pytest.raises(CalibrationError, match="stronger tier"):
        calibrate(synthetic_trace(50, 0), role="chat", share=0.2, weights=Difficulty(), cheap_tier="a", strong_tier="a")


def test_difficulty_fit_learns_from_outcomes_and_beats_the_prior() -> None:
    records = synthetic_trace(3000, seed=2)
    # A thumbs-down on a cheap answer that was not escalated also counts as "did not do".
    records.append({"ts": 1, "kind": "feedback", "trace_id": "r0", "rating": "down"})
    rows, labels = difficulty.training_data(records, {"chat": "cloud-fast"})
    assert len(rows) == 3000 and labels[0] == 1
    fitted = difficulty.fit(rows[:2400], labels[:2400])
    assert fitted.fitted_on == 2400 and fitted.request > 0 and fitted.context > 0
    prior_loss = difficulty.log_loss(Difficulty(), rows[2400:], labels[2400:])
    fitted_loss = difficulty.log_loss(fitted, rows[2400:], labels[2400:])
    assert prior_loss is not None and fitted_loss is not None and fitted_loss < prior_loss
    # Requests sent straight to strong, failed ones and ones on another tier say nothing about the cheap tier.
    assert difficulty.outcome_label({"strong": True, "steps": [{"tier": "cloud-strong"}]}, [], "cloud-fast") is None
    assert difficulty.outcome_label({"error": "x", "steps": [{"tier": "cloud-fast"}]}, [], "cloud-fast") is None
    assert difficulty.outcome_label({"steps": [{"tier": "local"}]}, [], "cloud-fast") is None
    stronger = [{"outcome": "stronger"}]
    assert difficulty.outcome_label({"steps": [{"tier": "cloud-fast"}]}, stronger, "cloud-fast") == 1
    # Too few outcomes: the prior stays.
    assert difficulty.fit(rows[:5], labels[:5]) == Difficulty()


def test_strength_sends_hard_requests_to_the_strong_tier(tmp_path: Path) -> None:
    config = config_from(tmp_path, "[roles.chat]\nstrong_share = 0.2\nstrong_threshold = 0.5\n")
    base = Decision(
        route="explain", role="chat", tier="cloud-fast", score=0.9, margin=0.5, stage="embedding", reason="r"
    )
    easy = strength.apply(config, base, request_tokens=10)
    assert easy.tier == "cloud-fast" and easy.strength is not None and not easy.strength.strong
    hard = strength.apply(config, base, request_tokens=400, context_tokens=6000)
    assert hard.tier == "cloud-strong" and hard.strength is not None and hard.strength.strong
    assert hard.strength.threshold == 0.5 and hard.strength.difficulty >= 0.5
    assert "straight to cloud-strong" in hard.reason
    # A route with its own tier keeps it; the agent role has no strong/weak decision.
    own = strength.apply(
        config, Decision(**{**base.to_dict(), "tier": "local"}), request_tokens=400, context_tokens=6000
    )
    assert own.tier == "local" and own.strength is not None and not own.strength.strong
    agent = Decision(route="plan", role="agent", tier="cloud-strong", score=1, margin=1, stage="rule", reason="r")
    assert strength.apply(config, agent, request_tokens=400).strength is None
    # Off by default: the score is shown, nothing moves.
    other = tmp_path / "default"
    other.mkdir()
    default = strength.apply(config_from(other), base, 400, 6000)
    assert default.tier == "cloud-fast" and default.strength is not None and default.strength.threshold is None


def test_uncalibrated_share_says_how_to_calibrate(tmp_path: Path) -> None:
    config = config_from(tmp_path, "[roles.edit]\nstrong_share = 0.3\n")
    base = Decision(route="fix", role="edit", tier="cloud-fast", score=0.9, margin=0.5, stage="embedding", reason="r")
    decided = strength.apply(config, base, request_tokens=4000, context_tokens=9000)
    assert decided.tier == "cloud-fast" and "tinyarms router calibrate --role edit" in decided.reason


@pytest.mark.parametrize("share", ["1.5", "-0.1", "1"])
def test_strong_share_out_of_range_is_an_error_naming_the_line(tmp_path: Path, share: str) -> None:
    user = tmp_path / "config.toml"
    user.write_text(f"[roles.chat]\nstrong_share = {share}\n")
    result = load_config(ConfigInputs(user_file=user, env={}, workspace=tmp_path))
    assert result.config is None
    assert any(p.line == 2 and "strong_share" in p.message for p in result.problems), result.problems


def test_set_keys_keeps_comments_and_refuses_broken_files(tmp_path: Path) -> None:
    user = tmp_path / "config.toml"
    user.write_text('# my settings\nextends = "default"\n\n[roles.chat]\ntier = "cloud-fast"  # cheap\n')
    set_keys(user, {("roles", "chat", "strong_threshold"): 0.42, ("router", "difficulty"): {"bias": -2.0}})
    text = user.read_text()
    assert "# my settings" in text and "# cheap" in text
    parsed = tomllib.loads(text)
    assert parsed["roles"]["chat"] == {"tier": "cloud-fast", "strong_threshold": 0.42}
    assert parsed["router"]["difficulty"]["bias"] == -2.0
    broken = tmp_path / "broken.toml"
    broken.write_text("[roles.chat\ntier = 1\n")
    with pytest.raises(ConfigEditError, match="not valid TOML"):
        set_keys(broken, {("roles", "chat", "strong_threshold"): 0.1})
    assert broken.read_text() == "[roles.chat\ntier = 1\n"  # nothing lost
    assert not list(tmp_path.glob("*.partial"))
