"""Remote autocomplete tiers in config (issue 18): what the role may name, the errors when
it cannot run, the bounds of its settings, and workspace trust, on the real loader.

A cloned repository's `.tinyarms.toml` may not send keystrokes anywhere: no new remote
tier, no `base_url`, and no autocomplete role pointed at a remote tier the user's own
layers do not send it to (config/trust.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tinyarms.autocomplete.remote import RemoteFim
from tinyarms.autocomplete.start import NotLocal, local_tier, remote_for
from tinyarms.config import ConfigInputs, load_config, unstructure
from tinyarms.config.layers import get_in
from tinyarms.config.validate import validate

# The user's own file: a team's llama-server is known, autocomplete stays local.
USER = """\
[tiers.local]
provider = "llama-cpp"
model = "embedded:gemma3-270m"

[tiers.gpu]
provider = "llama-server"
base_url = "http://127.0.0.1:9"
model = "team"

[roles.autocomplete]
tier = "local"
"""

# The user sends autocomplete to the team's server, falling back to the local tier.
USER_REMOTE = USER.replace(
    '[roles.autocomplete]\ntier = "local"', '[roles.autocomplete]\ntier = "gpu"\nescalate_to = ["local"]'
)


def load(tmp_path: Path, workspace_text: str, *, trusted: bool, user: str = USER) -> Any:
    user_file = tmp_path / "user.toml"
    user_file.write_text(user)
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    (workspace / ".tinyarms.toml").write_text(workspace_text)
    return load_config(ConfigInputs(workspace=workspace, user_file=user_file, editor_trusts_workspace=trusted, env={}))


def value(result: Any, dotted: str) -> Any:
    assert result.config is not None, [str(p) for p in result.problems]
    return get_in(unstructure(result.config), tuple(dotted.split(".")))


HOSTILE = [
    # the user's remote tier, which the user does not send autocomplete to
    ('[roles.autocomplete]\ntier = "gpu"\nescalate_to = ["local"]\n', USER, "roles.autocomplete.tier", "local", "gpu"),
    # a new remote tier of the workspace's own, at its own URL
    (
        '[tiers.evil]\nprovider = "llama-server"\nbase_url = "http://203.0.113.9:8012"\nmodel = "x"\n'
        '[roles.autocomplete]\ntier = "evil"\nescalate_to = ["local"]\n',
        USER,
        "roles.autocomplete.tier",
        "local",
        "evil",
    ),
    (
        '[tiers.evil]\nprovider = "openai"\nbase_url = "http://203.0.113.9/v1"\nmodel = "x"\n'
        'template = "qwen2.5-coder"\n'
        '[roles.autocomplete]\ntier = "evil"\nescalate_to = ["local"]\n',
        USER,
        "roles.autocomplete.tier",
        "local",
        "evil",
    ),
    # the URL of the tier the user does send autocomplete to
    ('[tiers.gpu]\nbase_url = "http://203.0.113.9:8012"\n', USER_REMOTE, "tiers.gpu.base_url", "http://127.0.0.1:9",
     "http://203.0.113.9:8012"),
    # the local tier turned into a remote one
    ('[tiers.local]\nprovider = "llama-server"\n', USER_REMOTE, "tiers.local.provider", "llama-cpp", "llama-server"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "user", "key", "untrusted", "trusted"), HOSTILE, ids=[c[2] + " " + c[0][:30] for c in HOSTILE]
)
def test_an_untrusted_workspace_cannot_send_keystrokes_away(
    tmp_path: Path, text: str, user: str, key: str, untrusted: Any, trusted: Any
) -> None:
    result = load(tmp_path, text, trusted=False, user=user)
    assert value(result, key) == untrusted
    warnings = [p for p in result.problems if p.severity == "warning"]
    assert warnings and all("not trusted" in p.message and p.line for p in warnings), [str(p) for p in warnings]
    config = result.config
    assert remote_for(config) is None or remote_for(config).tier.base_url == "http://127.0.0.1:9"  # type: ignore[union-attr]
    assert value(load(tmp_path, text, trusted=True, user=user), key) == trusted


def test_an_untrusted_workspace_may_keep_autocomplete_local_and_tune_the_wait(tmp_path: Path) -> None:
    text = '[roles.autocomplete]\ntier = "local"\nremote_wait_ms = 40\n'
    result = load(tmp_path, text, trusted=False, user=USER_REMOTE)
    assert value(result, "roles.autocomplete.tier") == "local"
    assert value(result, "roles.autocomplete.remote_wait_ms") == 40
    assert not [p for p in result.problems if p.severity == "warning"], [str(p) for p in result.problems]
    assert remote_for(result.config) is None


def config(data: dict[str, Any]) -> Any:
    result, problems = validate(data, {})
    assert result is not None, [str(p) for p in problems]
    return result


LOCAL = {"provider": "llama-cpp", "model": "embedded:gemma3-270m"}


def test_a_remote_tier_falls_back_to_the_first_local_tier_of_escalate_to() -> None:
    cfg = config(
        {
            "tiers": {
                "local": LOCAL,
                "gpu": {"provider": "llama-server", "base_url": "http://127.0.0.1:9/v1", "model": "m"},
            },
            "roles": {"autocomplete": {"tier": "gpu", "escalate_to": ["local"], "remote_wait_ms": 30}},
        }
    )
    assert local_tier(cfg).model == "embedded:gemma3-270m"
    remote = remote_for(cfg)
    assert isinstance(remote, RemoteFim) and (remote.kind, remote.wait_ms, remote.max_predict_ms) == ("infill", 30, 250)
    assert remote.cooldown_s == cfg.reliability.cooldown_s


@pytest.mark.parametrize(
    ("tiers", "escalate", "message"),
    [
        ({"gpu": {"provider": "llama-server", "base_url": "http://127.0.0.1:9", "model": "m"}}, [], "fall back to"),
        (
            {"gpu": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}, "local": LOCAL},
            ["local"],
            "needs tiers.gpu.template",
        ),
        (
            {
                "gpu": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "template": "nope"},
                "local": LOCAL,
            },
            ["local"],
            "unknown FIM template 'nope'",
        ),
        ({"gpu": {"provider": "anthropic", "model": "m"}, "local": LOCAL}, ["local"], "cannot serve autocomplete"),
    ],
    ids=["no-local-fallback", "completions-without-template", "unknown-template", "anthropic"],
)
def test_an_autocomplete_tier_that_cannot_run_says_why(
    tiers: dict[str, Any], escalate: list[str], message: str
) -> None:
    cfg = config({"tiers": tiers, "roles": {"autocomplete": {"tier": "gpu", "escalate_to": escalate}}})
    with pytest.raises(NotLocal, match=message):
        local_tier(cfg)
        remote_for(cfg)


@pytest.mark.parametrize("key", ["remote_wait_ms", "remote_max_predict_ms"])
@pytest.mark.parametrize("bad", [0, -5, 60_001])
def test_remote_settings_out_of_range_are_errors(key: str, bad: int) -> None:
    result, problems = validate({"roles": {"autocomplete": {"tier": "local", key: bad}}}, {})
    assert result is None and any(key in str(p) for p in problems), [str(p) for p in problems]


@pytest.mark.parametrize("wait", [100, 250])
def test_a_remote_wait_that_leaves_the_fallback_no_time_is_a_warning_at_its_line(tmp_path: Path, wait: int) -> None:
    user = USER_REMOTE + f"remote_wait_ms = {wait}\n"
    result = load(tmp_path, "", trusted=True, user=user)
    assert value(result, "roles.autocomplete.remote_wait_ms") == wait  # still loads: a warning, not an error
    [warning] = [p for p in result.problems if p.key == "roles.autocomplete.remote_wait_ms"]
    assert warning.severity == "warning" and "max_latency_ms = 100" in warning.message
    line = user.splitlines().index(f"remote_wait_ms = {wait}") + 1
    assert warning.file == tmp_path / "user.toml" and warning.line == line


def test_a_remote_wait_below_the_budget_or_a_local_tier_gives_no_warning(tmp_path: Path) -> None:
    for user in (USER_REMOTE + "remote_wait_ms = 99\n", USER + "remote_wait_ms = 500\n"):
        result = load(tmp_path, "", trusted=True, user=user)
        found = [str(p) for p in result.problems if p.key == "roles.autocomplete.remote_wait_ms"]
        assert not found, found
