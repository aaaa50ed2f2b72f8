"""One agent run on the real embedded model (Gemma 3 270M, llama.cpp in its child process).

Its tool calls come out of grammar-constrained decoding (backends/local_tools.py and the
worker's `json_schema`): whatever the small model "wants", every call must parse and name
a real tool, and the run must end cleanly (the model's summary) within its step limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyarms import agent
from tinyarms.config import ConfigInputs, load_config
from tinyarms.local_model.manager import all_models


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in ("CONFIG", "STATE", "DATA"):
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(tmp_path / "home" / kind.lower()))


async def test_the_embedded_model_makes_valid_calls_and_ends_within_its_step_limit(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("The launch code is 4711.\n")
    user = tmp_path / "user.toml"
    # Generous clocks: a loaded 2-core machine evaluates the prompt at a few tokens a second.
    user.write_text(
        'extends = "local-only"\n[tiers.local]\ntimeout_s = 900.0\n[roles.agent]\nmax_tokens = 60\n'
        "[reliability]\ndeadline_s = 900.0\n[agent]\nmax_steps = 3\nmax_seconds = 1800.0\n[cache]\nenabled = false\n"
    )
    config = load_config(ConfigInputs(user_file=user)).config
    assert config is not None and config.tiers[config.roles.agent.tier].provider == "llama-cpp"
    ctx = agent.ToolContext(agent.Workspace([ws]), agent.DiskFiles(), config.agent)
    tools = agent.builtin_tools(config.agent)
    run = agent.Run(config, "Read notes.txt, then answer with the launch code.", ctx, tools)
    try:
        report = await run.execute()
    finally:
        for model in all_models():
            await model.shutdown()
    calls = [c for s in report.steps for c in s.tool_calls]
    print(f"embedded agent run: {report.stopped}; calls: {[(c.name, c.arguments) for c in calls]}; "
          f"answer: {report.answer!r}")  # fmt: skip
    assert report.stop == "done", report.stopped
    assert 1 <= len(report.steps) <= 3
    assert all(s.tier == "local" for s in report.steps)
    assert run.malformed == 0
    assert all(c.name in {t.name for t in tools} and isinstance(c.arguments, dict) for c in calls)
    assert report.answer.strip()
    assert report.files == []  # nothing asked it to write
