"""The shipped presets: each one loads cleanly, and the wheel carries them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tinyarms.config import ConfigInputs, load_config
from tinyarms.config.layers import preset_names

REPO = Path(__file__).resolve().parents[1]


def load_preset(name: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    user = tmp_path / "config.toml"
    user.write_text(f'extends = "{name}"\n')
    return load_config(ConfigInputs(user_file=user, env={}))


def test_the_four_presets_exist() -> None:
    assert set(preset_names()) >= {"default", "local-only", "openai", "anthropic"}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_valid(name: str, tmp_path: Path) -> None:
    result = load_preset(name, tmp_path)
    assert result.problems == [], [str(p) for p in result.problems]
    assert result.config is not None
    assert result.config.roles.autocomplete.tier in result.config.tiers


def test_default_preset_tiers(tmp_path: Path) -> None:
    config = load_preset("default", tmp_path).config
    assert config is not None
    assert {"local", "cloud-fast", "cloud-strong"} <= set(config.tiers)
    assert config.tiers["local"].provider == "llama-cpp"
    assert config.roles.autocomplete.tier == "local"
    for role in ("chat", "edit", "agent"):
        assert config.tier_for(role).is_remote
        assert config.roles.get(role).escalate_to, f"{role} should escalate"


def test_local_only_sends_nothing_off_the_machine(tmp_path: Path) -> None:
    config = load_preset("local-only", tmp_path).config
    assert config is not None
    assert all(not tier.is_remote for tier in config.tiers.values())


def test_wheel_ships_the_presets(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("tinyarms-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in preset_names():
        assert f"tinyarms/roles/{preset}.toml" in names
    assert "tinyarms/server.py" in names
