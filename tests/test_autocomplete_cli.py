"""`tinyarms complete` with the real embedded model."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_tinyarms as tinyarms


def test_complete_a_file_position_as_json(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "lines.py"
    source.write_text("import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return f.\n")
    done = tinyarms(env, "complete", str(source), "--line", "5", "--col", "17", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"text", "elapsed_ms", "model", "template"}
    assert result["model"] == "embedded:gemma3-270m" and result["template"] == "prefix-only"
    assert result["text"].startswith("read"), result
    # Past the end of the file: clamped, still an answer.
    far = tinyarms(env, "complete", str(source), "--line", "99", "--col", "99")
    assert far.returncode == 0, far.stderr


def test_complete_jsonl_answers_every_line_in_order(env: dict[str, str]) -> None:
    env = {**env, "TINYARMS_TIERS__LOCAL__MODEL": "embedded:smollm2-135m"}
    lines = [
        {"prefix": "import sys\n\n\ndef main():\n    for arg in sys.", "suffix": "\n", "path": "a.py"},
        "not json",
        {"prefix": "def add(a, b):\n    return a", "suffix": "\n", "path": "b.py"},
    ]
    stdin = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    done = tinyarms(env, "complete", "--jsonl", stdin=stdin)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == 3
    assert answers[1]["text"] == "" and "error" in answers[1]
    assert "stdin:2" in done.stderr  # the bad line is named
    for answer in (answers[0], answers[2]):
        assert set(answer) == {"text", "elapsed_ms"} and answer["elapsed_ms"] > 0
    assert answers[0]["text"].strip()


def test_demo_shows_a_real_completion(env: dict[str, str]) -> None:
    done = tinyarms(env, "demo")
    assert done.returncode == 0, done.stderr
    assert "autocomplete with embedded:gemma3-270m" in done.stdout
    assert "return f.\u2038read" in done.stdout
    assert "next keystroke (cache)" in done.stdout
