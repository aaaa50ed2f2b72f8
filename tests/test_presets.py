"""The shipped presets: each one loads cleanly, and the wheel carries them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tinyarms.autocomplete.start import local_tier, remote_for
from tinyarms.config import ConfigInputs, load_config
from tinyarms.config.layers import presets_dir

SHIPPED = sorted(p.stem for p in presets_dir().glob("*.toml"))

REPO = Path(__file__).resolve().parents[1]


def load_preset(name: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    user = tmp_path / "config.toml"
    user.write_text(f'extends = "{name}"\n')
    return load_config(ConfigInputs(user_file=user, env={}))


def test_the_shipped_presets_exist() -> None:
    assert set(SHIPPED) >= {"default", "local-only", "openai", "anthropic"}
    assert set(SHIPPED) >= {"ollama", "llama-server", "lm-studio", "openrouter", "vllm-team", "privacy"}


@pytest.mark.parametrize("name", SHIPPED)
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


@pytest.mark.parametrize(
    ("name", "tier", "provider", "base_url", "key"),
    [
        ("ollama", "ollama", "openai", "http://127.0.0.1:11434/v1", None),
        ("llama-server", "llama-server", "llama-server", "http://127.0.0.1:8012", None),
        ("lm-studio", "lm-studio", "openai", "http://127.0.0.1:1234/v1", None),
        ("vllm-team", "team", "openai", "http://127.0.0.1:8000/v1", "VLLM_API_KEY"),
        ("openrouter", "cloud-fast", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    ],
)
def test_server_presets_send_requests_where_they_say(
    name: str, tier: str, provider: str, base_url: str, key: str | None, tmp_path: Path
) -> None:
    config = load_preset(name, tmp_path).config
    assert config is not None
    for role in ("chat", "edit", "agent"):
        chosen = config.tier_for(role)
        assert chosen.provider == provider and chosen.endpoints == [base_url] and chosen.api_key_env == key
        if name != "openrouter":  # a server of your own: a failure falls back to the local model
            assert config.roles.get(role).tier == tier and config.roles.get(role).escalate_to == ["local"]
    # Autocomplete answers within 100 ms in every preset, from the local model at least as a fallback.
    assert local_tier(config).provider == "llama-cpp"
    assert config.roles.autocomplete.max_latency_ms == 100


def test_llama_server_preset_autocompletes_on_infill_with_a_local_fallback(tmp_path: Path) -> None:
    config = load_preset("llama-server", tmp_path).config
    assert config is not None
    remote = remote_for(config)
    assert remote is not None and (remote.name, remote.kind) == ("llama-server", "infill")
    assert config.roles.autocomplete.escalate_to == ["local"] and local_tier(config).model == "embedded:gemma3-270m"
    assert remote.wait_ms < config.roles.autocomplete.max_latency_ms


def test_privacy_keeps_everything_local_and_no_text(tmp_path: Path) -> None:
    config = load_preset("privacy", tmp_path).config
    assert config is not None
    assert all(not tier.is_remote for tier in config.tiers.values())
    assert config.trace.text is False
    assert config.cache.enabled is False  # the cache stores requests and answers


def test_wheel_ships_the_presets(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("tinyarms-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in SHIPPED:
        assert f"tinyarms/roles/{preset}.toml" in names
    assert "tinyarms/server.py" in names
    assert "tinyarms/config/tinyarms.schema.json" in names  # for editors: `tinyarms config schema --path`
