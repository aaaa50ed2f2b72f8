"""A fresh install's first router use: the one-time ONNX export prints one line of tinyarms'
own and nothing from the libraries doing it (transformers' "Loading weights" bar,
onnxruntime's pre-processing warnings, torch's exporter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import isolated_env

SCRIPT = """
from tinyarms.router.prepare import prepare
first = prepare("all-MiniLM-L6-v2", "onnx-int8")
print("encoder ready:", first is not None, first.encode(["hello"]).shape)
print("second call exports again:", prepare("all-MiniLM-L6-v2", "onnx-int8") is not None)
"""


def test_first_export_says_one_line_and_nothing_from_libraries(tmp_path: Path) -> None:
    env = isolated_env(tmp_path / "home")
    env["XDG_CACHE_HOME"] = str(tmp_path / "fresh-cache")  # nothing exported yet: a fresh install
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "encoder ready: True (1, 384)\nsecond call exports again: False\n"
    lines = done.stderr.splitlines()
    assert lines[0] == "preparing the router encoder, once: about a minute", done.stderr
    assert len(lines) == 2 and lines[1].strip().startswith("done in "), done.stderr
    assert list((tmp_path / "fresh-cache" / "tinyarms" / "router" / "onnx").glob("*/model.onnx"))
