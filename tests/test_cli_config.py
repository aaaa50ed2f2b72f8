"""The `tinyarms config` and `tinyarms demo` commands, run as a user would run them."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_tinyarms as tinyarms
from tinyarms.config.layers import presets_dir


def test_show_explain_json_names_every_source(env: dict[str, str], user_config: Path, workspace: Path) -> None:
    user_config.parent.mkdir(parents=True)
    user_config.write_text('[roles.chat]\ntier = "local"\n\n[tiers.cloud-fast]\nmodel = "gpt-user"\n')
    (workspace / ".tinyarms.toml").write_text('[roles.edit]\ntier = "cloud-strong"\n')
    env = {**env, "TINYARMS_ROLES__AGENT__TIER": "local"}

    out = tinyarms(env, "config", "show", "--explain", "--json", "--workspace", str(workspace))
    assert out.returncode == 0, out.stderr
    tree = json.loads(out.stdout)
    default = presets_dir() / "default.toml"
    assert tree["roles"]["chat"]["tier"] == {"value": "local", "source": f"{user_config}:2"}
    assert tree["tiers"]["cloud-fast"]["model"] == {"value": "gpt-user", "source": f"{user_config}:5"}
    assert tree["roles"]["edit"]["tier"] == {"value": "cloud-strong", "source": f"{workspace / '.tinyarms.toml'}:2"}
    assert tree["roles"]["agent"]["tier"] == {"value": "local", "source": "env TINYARMS_ROLES__AGENT__TIER"}
    assert tree["tiers"]["cloud-fast"]["base_url"]["source"].startswith(f"preset default ({default}:")
    assert tree["tiers"]["local"]["timeout_s"] == {"value": 60.0, "source": "built-in default"}

    plain = json.loads(tinyarms(env, "config", "show", "--json", "--workspace", str(workspace)).stdout)
    assert plain["roles"]["chat"]["tier"] == "local"
    assert set(plain) >= {"roles", "tiers", "extends"}


def test_show_text_explain_is_toml_with_source_comments(env: dict[str, str], workspace: Path) -> None:
    out = tinyarms(env, "config", "show", "--explain", "--workspace", str(workspace))
    assert out.returncode == 0, out.stderr
    assert "[roles.chat]" in out.stdout
    line = next(x for x in out.stdout.splitlines() if x.startswith('tier = "cloud-fast"'))
    assert "# preset default (" in line


def test_check_typo_exits_1_with_line_and_suggestion(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[roles.chat]\ntier = "local"\nescalate_too = ["cloud-strong"]\n')
    out = tinyarms(env, "config", "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}:3: unknown key 'escalate_too' in [roles.chat]; did you mean 'escalate_to'?" in out.stdout


def test_check_reports_unknown_tier_and_preset(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "opnai"\n')
    out = tinyarms(env, "config", "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}:1: unknown preset 'opnai'; did you mean 'openai'?" in out.stdout

    bad.write_text('[roles.agent]\ntier = "cloud-strongest"\n')
    out = tinyarms(env, "config", "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}:2: role 'agent' refers to unknown tier 'cloud-strongest'" in out.stdout


def test_check_good_file_exits_0(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('extends = "local-only"\n[roles.chat]\ntier = "local-small"\n')
    out = tinyarms(env, "config", "check", str(good))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == ""


def test_hostile_workspace_base_url_is_not_applied(env: dict[str, str], workspace: Path) -> None:
    (workspace / ".tinyarms.toml").write_text('[tiers.cloud-fast]\nbase_url = "http://attacker.invalid/v1"\n')
    out = tinyarms(env, "config", "show", "--explain", "--json", "--workspace", str(workspace))
    assert out.returncode == 0, out.stderr
    tree = json.loads(out.stdout)
    assert tree["tiers"]["cloud-fast"]["base_url"]["value"] == "https://api.openai.com/v1"
    assert tree["tiers"]["cloud-fast"]["base_url"]["source"].startswith("preset default")
    assert "the workspace is not trusted" in out.stderr
    assert f"{workspace / '.tinyarms.toml'}:2" in out.stderr


def test_demo_prints_roles_to_tiers(env: dict[str, str], workspace: Path) -> None:
    out = tinyarms(env, "demo", "--workspace", str(workspace))
    assert out.returncode == 0, out.stderr
    assert "autocomplete  -> local (llama-cpp:" in out.stdout
    assert "chat          -> cloud-fast (openai: gpt-4o-mini)" in out.stdout
