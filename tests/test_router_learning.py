"""Strong or weak and learning from traffic: the difficulty score, calibration on a trace, fits from the log."""

from __future__ import annotations

import json
import math
import random
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from conftest import run_tinyarms
from tinyarms.config import ConfigInputs, load_config
from tinyarms.config.edit import ConfigEditError, set_keys
from tinyarms.config.schema import Difficulty
from tinyarms.router import difficulty, strength
from tinyarms.router.calibrate import CalibrationError, calibrate, share_at
from tinyarms.router.decision import Decision
from tinyarms.router.fit import load_labelled

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
    # Projected: the requests at or above the threshold at the strong price, the rest at what they cost.
    expected = sum(
        0.01 if (difficulty.score_record(weights, r) or 0) >= priced.threshold else r["cost_usd"] for r in fitted
    )
    assert priced.cost_after_usd == pytest.approx(expected, rel=1e-6)
    assert priced.cost_before_usd == pytest.approx(sum(r["cost_usd"] for r in fitted), rel=1e-6)


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


# -- the CLI: calibrate and fit --from-log on a trace in the user's state dir ------------------


def write_trace(env: dict[str, str], records: list[dict[str, Any]]) -> Path:
    path = Path(env["XDG_STATE_HOME"]) / "tinyarms" / "trace.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with path.open("w") as out:
        for i, record in enumerate(records):
            out.write(json.dumps({**record, "ts": now - 3600 + i * 0.001}) + "\n")
    return path


def test_cli_calibrate_writes_a_threshold_that_holds_on_unseen_traffic(env: dict[str, str], user_config: Path) -> None:
    records = synthetic_trace(6000, seed=4)
    write_trace(env, records[:3000])  # the log calibrate reads; the rest is traffic it never saw
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text('# mine\nextends = "default"\n')
    done = run_tinyarms(env, "router", "calibrate", "--role", "chat", "--strong-share", "0.2")
    assert done.returncode == 0, done.stderr
    assert "target strong share 20.0%" in done.stdout and "share at or above it: 20.0%" in done.stdout
    assert "cost per request: cloud-fast" in done.stdout and "with the new threshold $" in done.stdout
    written = tomllib.loads(user_config.read_text())
    assert user_config.read_text().startswith("# mine") and written["extends"] == "default"
    threshold = written["roles"]["chat"]["strong_threshold"]
    assert written["roles"]["chat"]["strong_share"] == 0.2
    scores = [difficulty.score_record(Difficulty(), r) for r in records[3000:]]
    achieved = share_at([s for s in scores if s is not None], threshold)
    assert abs(achieved - 0.2) <= 0.02, achieved
    # The config now sends the hardest requests straight to the strong tier, and says so.
    hard = run_tinyarms(env, "route", "--json", "explain this: " + "x = compute(a, b) + other(c); " * 120)
    decision = json.loads(hard.stdout)
    assert decision["strength"]["threshold"] == threshold
    assert decision["strength"]["strong"] is (decision["strength"]["difficulty"] >= threshold)
    assert decision["tier"] == ("cloud-strong" if decision["strength"]["strong"] else "cloud-fast")
    # JSON, a dry run, and errors.
    dry = run_tinyarms(env, "router", "calibrate", "--role", "chat", "--strong-share", "0.3", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout.split("\n  roles.")[0])["target_share"] == 0.3
    assert tomllib.loads(user_config.read_text())["roles"]["chat"]["strong_share"] == 0.2  # unchanged
    bad = run_tinyarms(env, "router", "calibrate", "--role", "chat", "--strong-share", "2")
    assert bad.returncode == 1 and "between 0 and 1" in bad.stderr


def write_corrections(env: dict[str, str], rows: list[tuple[str | None, str]]) -> None:
    path = Path(env["XDG_STATE_HOME"]) / "tinyarms" / "corrections.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        for route, text in rows:
            out.write(json.dumps({"ts": time.time(), "trace_id": None, "route": route, "text": text}) + "\n")


# The user's own taste, in three languages: requests the shipped routes may read otherwise.
CORRECTIONS = [
    ("review", "can this loop be made faster somehow"),
    ("fix", "el botón de guardar no hace nada cuando lo pulso"),
    (None, "wie spät ist es gerade in Tokio"),
]


def test_cli_fit_from_log_learns_corrections_and_refuses_a_damaging_fit(env: dict[str, str], user_config: Path) -> None:
    user_config.parent.mkdir(parents=True, exist_ok=True)
    user_config.write_text('extends = "default"\n')
    write_trace(env, synthetic_trace(400, seed=5))
    write_corrections(env, CORRECTIONS)
    heldout = str(Path(__file__).parent / "data" / "router_heldout_multilingual.tsv")
    done = run_tinyarms(env, "router", "fit", "--from-log", "--since", "7d", "--heldout", heldout, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "route corrections: 3 (3 new examples)" in done.stdout
    assert "corrected requests routed as corrected:" in done.stdout and "3 after" in done.stdout
    assert "held-out router_heldout_multilingual.tsv: accuracy" in done.stdout
    assert "log-loss on the last fifth" in done.stdout
    written = tomllib.loads(user_config.read_text())
    assert written["routes"]["review"]["more_utterances"] == ["can this loop be made faster somehow"]
    assert written["router"]["more_out_of_scope"] == ["wie spät ist es gerade in Tokio"]
    assert written["router"]["difficulty"]["fitted_on"] > 0 and written["router"]["difficulty"]["request"] > 0
    routed = run_tinyarms(env, "route", stdin="\n".join(text for _, text in CORRECTIONS) + "\n")
    assert [json.loads(line)["route"] for line in routed.stdout.splitlines()] == [r for r, _ in CORRECTIONS]

    # A user who "corrects" every shipped explanation request to test and every bug report to document:
    # held-out accuracy drops, nothing is written. (120 invented corrections of that kind were enough
    # with 1037 training rows; against 2005 they moved held-out 1 by a single request.)
    before = user_config.read_text()
    shipped = load_labelled(Path(__file__).parent / "data" / "router_train.tsv")
    wrong = [
        ("test" if label == "explain" else "document", text) for label, text in shipped if label in ("explain", "fix")
    ]
    write_corrections(env, wrong)
    heldout = str(Path(__file__).parent / "data" / "router_heldout.tsv")
    bad = run_tinyarms(env, "router", "fit", "--from-log", "--heldout", heldout, timeout=900)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "refused: held-out accuracy on router_heldout.tsv would drop" in bad.stderr
    assert user_config.read_text() == before
