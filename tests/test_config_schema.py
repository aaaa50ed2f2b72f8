"""The JSON Schema generated from the attrs schema: current where it ships, complete, and
accepted by real validators (Taplo, the TOML toolkit editors use, and jsonschema) for every
shipped preset, while a typo is flagged at its line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import REPO, run_tinyarms
from tinyarms.config.jsonschema import SCHEMA_FILE, field_docs, generate, shipped_schema_text
from tinyarms.config.layers import presets_dir

SHIPPED = sorted(presets_dir().glob("*.toml"))
VSCODE_COPY = REPO / "vscode-client" / "schemas" / "tinyarms.schema.json"
REGENERATE = "python scripts/gen_schema.py"


def taplo() -> str:
    found = shutil.which("taplo") or str(Path(sys.executable).parent / "taplo")
    assert Path(found).exists(), "taplo is not installed (pip install taplo, the test extra)"
    return found


def taplo_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [taplo(), "lint", "--no-auto-config", "--schema", SCHEMA_FILE.as_uri(), str(path)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "RUST_LOG": "error"},
    )  # fmt: skip


def test_the_shipped_schema_files_are_current() -> None:
    current = shipped_schema_text()
    assert SCHEMA_FILE.read_text() == current, f"regenerate: {REGENERATE}"
    assert VSCODE_COPY.read_text() == current, f"regenerate: {REGENERATE}"


def test_the_cli_prints_the_schema(env: dict[str, str]) -> None:
    done = run_tinyarms(env, "config", "schema")
    assert done.returncode == 0 and json.loads(done.stdout) == json.loads(SCHEMA_FILE.read_text())


def test_every_key_is_documented_typed_and_closed() -> None:
    schema = generate()
    tables = [schema, *schema["definitions"].values()]
    for table in tables:
        assert table["additionalProperties"] is False
        for key, prop in table["properties"].items():
            assert prop.get("description"), f"{key} has no description: document it in config/schema.py"
            assert "type" in prop or "$ref" in prop, key
    tier = schema["definitions"]["Tier"]["properties"]
    assert tier["provider"]["enum"] == ["llama-cpp", "openai", "llama-server", "anthropic"]
    assert tier["n_ctx"]["type"] == "integer" and tier["timeout_s"]["type"] == "number"
    assert schema["definitions"]["Router"]["properties"]["fallback_role"]["enum"] == ["chat", "edit", "agent"]
    assert schema["definitions"]["Route"]["properties"]["role"]["enum"] == ["chat", "edit", "agent"]
    assert set(schema["definitions"]["Roles"]["properties"]) == {"autocomplete", "chat", "edit", "agent"}
    assert "default" in shipped_json()["properties"]["extends"]["examples"]
    from tinyarms.config.schema import Tier

    assert tier["model"]["description"] == field_docs(Tier)["model"]


def shipped_json() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.mark.parametrize("preset", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_preset_validates_with_jsonschema(preset: Path) -> None:
    validator = jsonschema.Draft7Validator(shipped_json())
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(tomllib.loads(preset.read_text()))
    ]
    assert errors == []


def test_every_shipped_preset_validates_with_taplo() -> None:
    for preset in SHIPPED:
        done = taplo_lint(preset)
        assert done.returncode == 0, f"{preset.name}: {done.stdout}{done.stderr}"


TYPO = """# a user file with mistakes
[roles.chat]
tier = "local"

[tiers.local]
provder = "llama-cpp"
n_ctx = "big"
"""


def test_taplo_reports_a_typo_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / ".tinyarms.toml"
    path.write_text(TYPO)
    done = taplo_lint(path)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert re.search(rf"'provder' was unexpected.*\n\s*┌─ {re.escape(str(path))}:6:1", out), out
    assert re.search(rf"\"big\" is not of type \"integer\"\n\s*┌─ {re.escape(str(path))}:7:9", out), out


def test_taplo_follows_a_schema_line_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"#:schema {SCHEMA_FILE.as_uri()}\n" + TYPO)
    done = subprocess.run(
        [taplo(), "lint", "--no-auto-config", str(path)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "RUST_LOG": "error"},
    )  # fmt: skip
    assert done.returncode != 0 and f"{path}:7:1" in done.stdout + done.stderr
    path.write_text(f"#:schema {SCHEMA_FILE.as_uri()}\n" + (presets_dir() / "default.toml").read_text())
    clean = subprocess.run([taplo(), "lint", "--no-auto-config", str(path)], capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_jsonschema_agrees_on_the_typo() -> None:
    errors = list(jsonschema.Draft7Validator(shipped_json()).iter_errors(tomllib.loads(TYPO)))
    messages = sorted(e.message for e in errors)
    assert any("'provder' was unexpected" in m for m in messages)
    assert any("'big' is not of type 'integer'" in m for m in messages)


def test_the_vscode_extension_contributes_the_schema() -> None:
    package = json.loads((REPO / "vscode-client" / "package.json").read_text())
    entries = package["contributes"]["tomlValidation"]
    assert {e["url"] for e in entries} == {"./schemas/tinyarms.schema.json"}
    patterns = [re.compile(e["regexMatch"]) for e in entries]
    for uri in ("file:///home/me/project/.tinyarms.toml", "file:///home/me/.config/tinyarms/config.toml"):
        assert any(p.match(uri) for p in patterns), uri
    assert not any(p.match("file:///home/me/project/pyproject.toml") for p in patterns)
    assert "!schemas/tinyarms.schema.json" in (REPO / "vscode-client" / ".vscodeignore").read_text()
