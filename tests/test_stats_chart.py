"""`tinyarms stats --plot` / `--html` from a real trace: requests answered through the tier chain
against the loopback fault server (a cascade escalation, a failover, cache hits, prices)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_tinyarms
from faultserver import FaultServer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NOTES_COPY = Path("/work/wt/notes/issue-17-stats.png")


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An isolated home whose trace holds requests of every kind the chart shows."""
    from conftest import isolated_env

    home = tmp_path_factory.mktemp("stats")
    env = isolated_env(home)
    env["XDG_CACHE_HOME"] = str(home / "cache")  # its own response cache: the hits below are this test's
    env["HF_HOME"] = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    with FaultServer() as server:
        user = home / "config" / "tinyarms" / "config.toml"
        user.parent.mkdir(parents=True)
        price = "price = { input_per_mtok = 3.0, output_per_mtok = 15.0 }"
        user.write_text(
            f'extends = "local-only"\n\n'
            f'[tiers.fast]\nprovider = "openai"\nbase_url = "{server.url}"\nmodel = "lowconf"\n'
            "price = { input_per_mtok = 0.5, output_per_mtok = 1.5 }\n\n"
            f'[tiers.strong]\nprovider = "openai"\nbase_url = "{server.url}"\nmodel = "ok"\n{price}\n\n'
            f'[tiers.flaky]\nprovider = "openai"\nbase_url = "{server.url}"\nmodel = "500"\nmax_retries = 0\n\n'
            '[roles.chat]\ntier = "fast"\nescalate_to = ["strong"]\ncascade = { min_mean_logprob = -1.0 }\n\n'
            '[roles.edit]\ntier = "strong"\ntemperature = 0.0\n\n'
            '[roles.agent]\ntier = "flaky"\nescalate_to = ["strong"]\n'
        )
        asks = [("chat", f"why is the sky blue {uuid.uuid4().hex}")] * 2
        asks += [("edit", "rename x to y")] * 3  # the second and third are cache hits
        asks += [("agent", f"plan a refactor {uuid.uuid4().hex}")] * 2
        for role, text in asks:
            done = run_tinyarms(env, "ask", "--role", role, "--json", text)
            assert done.returncode == 0, done.stderr
        yield env


def read_trace(env: dict[str, str]) -> list[dict[str, object]]:
    path = Path(env["XDG_STATE_HOME"]) / "tinyarms" / "trace.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_trace_has_what_the_chart_shows(traced: dict[str, str]) -> None:
    records = read_trace(traced)
    assert len(records) == 7
    assert sum(1 for r in records if r["escalations"]) == 2  # chat: low log-probs on `fast`
    assert sum(1 for r in records if r["cache"] == "hit") == 2  # edit, repeated at temperature 0
    assert {r["tier"] for r in records if r["role"] == "agent"} == {"strong"}  # `flaky` failed over


def test_plot_writes_a_png_from_the_trace(traced: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "stats.png"
    done = run_tinyarms(traced, "stats", "--plot", str(out))
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000  # four drawn panels, not an empty canvas
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 800)
    assert str(out) in done.stdout
    if NOTES_COPY.parent.is_dir():  # the closing note shows this chart
        shutil.copyfile(out, NOTES_COPY)


def test_html_embeds_the_chart_and_the_numbers(traced: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "stats.html"
    done = run_tinyarms(traced, "stats", "--html", str(out))
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    [png] = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert base64.b64decode(png).startswith(PNG_MAGIC)
    # strong answered all 7: chat after escalating from fast, edit (2 cache hits), agent after flaky failed.
    assert re.search(r"<tr><td>strong</td><td>7</td>", page), page[-1500:]
    assert re.search(r"<tr><td>edit</td><td>3</td><td>0%</td><td>67%</td></tr>", page)
    assert re.search(r"<tr><td>chat</td><td>2</td><td>100%</td><td>0%</td></tr>", page)


def test_plot_with_no_trace_says_so_and_writes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "stats.png"
    done = run_tinyarms(env, "stats", "--plot", str(out))
    assert done.returncode == 1 and "no requests" in done.stderr
    assert not out.exists()
