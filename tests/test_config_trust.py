"""Workspace trust, range checks and files that used to break loading (issue 12), on the real loader.

Each key family an untrusted workspace may not loosen is tried untrusted (the user's value
applies, a warning sits at the workspace line) and trusted (the workspace value applies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tinyarms.config import ConfigInputs, LoadResult, load_best, load_config
from tinyarms.config.layers import get_in

USER = """\
[tiers.cloud-fast]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "gpt-4o-mini"
api_key_env = "TINYARMS_TEST_KEY"

[tiers.cloud-strong]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "gpt-4o"
api_key_env = "TINYARMS_TEST_KEY"

[roles.chat]
tier = "local"
escalate_to = []

[roles.edit]
tier = "local"
escalate_to = ["cloud-fast"]

[roles.agent]
tier = "cloud-fast"
escalate_to = []
enabled = false

[budgets]
daily_usd = 5.0

[reliability]
deadline_s = 30.0
"""


def load(tmp_path: Path, workspace_text: str, *, trusted: bool, user: str = USER) -> LoadResult:
    user_file = tmp_path / "user.toml"
    user_file.write_text(user)
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    (workspace / ".tinyarms.toml").write_text(workspace_text)
    inputs = ConfigInputs(workspace=workspace, user_file=user_file, editor_trusts_workspace=trusted, env={})
    return load_config(inputs)


def value(result: LoadResult, dotted: str) -> Any:
    assert result.config is not None, [str(p) for p in result.problems]
    from tinyarms.config import unstructure

    return get_in(unstructure(result.config), tuple(dotted.split(".")))


# (workspace text, key, untrusted value (the user's), trusted value (the workspace's))
LOOSENING = [
    ('[roles.chat]\ntier = "cloud-fast"\n', "roles.chat.tier", "local", "cloud-fast"),
    ('[roles.chat]\nescalate_to = ["cloud-strong"]\n', "roles.chat.escalate_to", [], ["cloud-strong"]),
    ("[roles.agent]\nenabled = true\n", "roles.agent.enabled", False, True),
    ('[routes.explain]\ntier = "cloud-strong"\n', "routes.explain.tier", None, "cloud-strong"),
    ("[budgets]\ndaily_usd = 0.0\n", "budgets.daily_usd", 5.0, 0.0),
    ("[budgets]\ndaily_usd = 50.0\n", "budgets.daily_usd", 5.0, 50.0),
    (
        "[tiers.cloud-fast.price]\ninput_per_mtok = 0.0\n",
        "tiers.cloud-fast.price",
        None,
        {"input_per_mtok": 0.0, "output_per_mtok": 0.0},
    ),
    ("[tiers.cloud-fast]\nmax_retries = 10\n", "tiers.cloud-fast.max_retries", 2, 10),
    ("[tiers.cloud-fast]\ntimeout_s = 600.0\n", "tiers.cloud-fast.timeout_s", 60.0, 600.0),
    ("[reliability]\ndeadline_s = 900.0\n", "reliability.deadline_s", 30.0, 900.0),
    ("[reliability]\nconnect_timeout_s = 60.0\n", "reliability.connect_timeout_s", 5.0, 60.0),
    ("[router]\nthreads = 8\n", "router.threads", 1, 8),
    ("[tiers.local]\nn_threads = 8\n", "tiers.local.n_threads", None, 8),
    # Every replica is an endpoint: a workspace can add none, to a known tier or a new one.
    (
        '[tiers.cloud-fast]\nbase_urls = ["https://evil.example/v1", "http://127.0.0.1:9/v1"]\n',
        "tiers.cloud-fast.base_urls",
        [],
        ["https://evil.example/v1", "http://127.0.0.1:9/v1"],
    ),
    (
        '[tiers.mine]\nprovider = "llama-cpp"\nmodel = "embedded:gemma3-270m"\nbase_urls = ["https://evil.example/v1"]\n',
        "tiers.mine",
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "untrusted", "trusted"), LOOSENING, ids=[c[0].split("\n")[0] + " " + c[1] for c in LOOSENING]
)
def test_untrusted_workspace_cannot_loosen(tmp_path: Path, text: str, key: str, untrusted: Any, trusted: Any) -> None:
    result = load(tmp_path, text, trusted=False)
    assert value(result, key) == untrusted
    warnings = [p for p in result.problems if p.severity == "warning"]
    assert warnings, "a refusal is a warning"
    assert all(p.file == tmp_path / "ws" / ".tinyarms.toml" and p.line for p in warnings)
    assert "not trusted" in warnings[0].message
    if trusted is None:
        return
    assert value(load(tmp_path, text, trusted=True), key) == trusted


# What an untrusted workspace may still do: tighten, and stay where the user sends code.
ALLOWED = [
    ('[roles.edit]\ntier = "cloud-fast"\n', "roles.edit.tier", "cloud-fast"),  # the user escalates edit there
    (
        '[roles.chat]\ntier = "mine"\n[tiers.mine]\nprovider = "llama-cpp"\nmodel = "embedded:gemma3-270m"\n',
        "roles.chat.tier",
        "mine",
    ),
    ("[budgets]\ndaily_usd = 2.0\nmonthly_usd = 20.0\n", "budgets.monthly_usd", 20.0),
    ("[budgets]\ndaily_usd = 2.0\n", "budgets.daily_usd", 2.0),
    ("[tiers.cloud-fast]\nmax_retries = 0\n", "tiers.cloud-fast.max_retries", 0),
    ("[reliability]\ndeadline_s = 10.0\n", "reliability.deadline_s", 10.0),
    ("[roles.agent]\nenabled = false\n", "roles.agent.enabled", False),
]


@pytest.mark.parametrize(("text", "key", "expected"), ALLOWED, ids=[c[1] for c in ALLOWED])
def test_untrusted_workspace_may_tighten(tmp_path: Path, text: str, key: str, expected: Any) -> None:
    result = load(tmp_path, text, trusted=False)
    assert value(result, key) == expected
    assert not [p for p in result.problems if p.severity == "warning"], [str(p) for p in result.problems]


@pytest.mark.parametrize("extends", ["local-only", "../evil.toml", "/etc/passwd"])
def test_untrusted_workspace_extends_nothing(tmp_path: Path, extends: str) -> None:
    (tmp_path / "evil.toml").write_text("[budgets]\ndaily_usd = 0.0\n")
    result = load(tmp_path, f'extends = "{extends}"\n', trusted=False)
    assert value(result, "budgets.daily_usd") == 5.0
    assert value(result, "extends") == "default"
    [warning] = [p for p in result.problems if p.severity == "warning"]
    assert warning.key == "extends" and warning.line == 1
    assert all("evil" not in str(path) and "passwd" not in str(path) for path in result.files)


def test_trusted_workspace_extends_a_file(tmp_path: Path) -> None:
    (tmp_path / "shared.toml").write_text("[reliability]\ndeadline_s = 45.0\n")
    result = load(tmp_path, 'extends = "../shared.toml"\n', trusted=True)
    assert value(result, "reliability.deadline_s") == 45.0


@pytest.mark.parametrize(
    ("user", "key", "message"),
    [
        ("[reliability]\ndeadline_s = nan\n", "reliability.deadline_s", "not a finite number"),
        ("[reliability]\ndeadline_s = inf\n", "reliability.deadline_s", "not a finite number"),
        ("[tiers.local]\nn_ctx = -5\n", "tiers.local.n_ctx", "below the minimum"),
        ("[router]\nthreads = 64\n", "router.threads", "above the maximum"),
        ("[budgets]\nmonthly_usd = -3.0\n", "budgets.monthly_usd", "below the minimum"),
        ("[routes.explain]\nthreshold = 1.5\n", "routes.explain.threshold", "above the maximum"),
    ],
)
def test_out_of_range_numbers_are_errors_at_their_line(tmp_path: Path, user: str, key: str, message: str) -> None:
    user_file = tmp_path / "user.toml"
    user_file.write_text("# a comment\n" + user)
    first, usable = load_best(ConfigInputs(user_file=user_file, env={}))
    [problem] = first.errors
    assert problem.key == key and message in problem.message
    assert problem.file == user_file and problem.line == 3
    assert usable.config is not None  # the server runs on the other layers meanwhile


def test_a_deeply_nested_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "pyproject.toml").write_text("[project]\nx = " + "[" * 600 + "]" * 600 + "\n")
    assert load_config(ConfigInputs(workspace=workspace, env={})).config is not None  # not ours: ignored
    (workspace / ".tinyarms.toml").write_text("x = " + "[" * 600 + "]" * 600 + "\n")
    first, usable = load_best(ConfigInputs(workspace=workspace, env={}))
    [problem] = first.errors
    assert problem.file == workspace / ".tinyarms.toml"
    assert usable.config is not None
    (workspace / ".tinyarms.toml").write_text("[roles.chat]\n" + "a = " + "[" * 100 + "]" * 100 + "\n")
    [problem] = load_config(ConfigInputs(workspace=workspace, env={})).errors
    assert "nested more than" in problem.message


def test_a_long_extends_chain_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "chain"
    folder.mkdir()
    for i in range(1200):
        (folder / f"c{i}.toml").write_text(f'extends = "c{i + 1}.toml"\n' if i < 1199 else "")
    user_file = folder / "c0.toml"
    first, usable = load_best(ConfigInputs(user_file=user_file, env={}))
    assert any("more than" in p.message for p in first.errors), [str(p) for p in first.problems]
    assert usable.config is not None


def test_a_tier_with_both_base_url_and_base_urls_is_an_error_at_its_line(tmp_path: Path) -> None:
    user_file = tmp_path / "user.toml"
    user_file.write_text(
        '[tiers.team]\nprovider = "openai"\nmodel = "m"\nbase_url = "http://a:8000/v1"\n'
        'base_urls = ["http://a:8000/v1", "http://b:8000/v1"]\n'
    )
    first, _ = load_best(ConfigInputs(user_file=user_file, env={}))
    [problem] = first.errors
    assert problem.key == "tiers.team.base_urls" and "both base_url and base_urls" in problem.message
    assert problem.file == user_file and problem.line == 5


@pytest.mark.parametrize(
    ("urls", "message"),
    [
        ("[]", "needs 1 to 64 URLs"),
        ('["ftp://a/v1"]', "is not an http(s) URL"),
        ('["http://a/v1", "http://a/v1"]', "more than once"),
        ('"http://a/v1"', "expected a list of strings"),
    ],
)
def test_bad_base_urls_are_errors_at_their_line(tmp_path: Path, urls: str, message: str) -> None:
    user_file = tmp_path / "user.toml"
    user_file.write_text(f'[tiers.team]\nprovider = "openai"\nmodel = "m"\nbase_urls = {urls}\n')
    first, _ = load_best(ConfigInputs(user_file=user_file, env={}))
    [problem] = first.errors
    assert message in problem.message and problem.file == user_file and problem.line == 4


def test_a_user_file_lists_replicas_for_a_presets_single_server(tmp_path: Path) -> None:
    user_file = tmp_path / "user.toml"
    user_file.write_text('extends = "vllm-team"\n[tiers.team]\nbase_urls = ["http://a:8000/v1", "http://b:8000/v1"]\n')
    result = load_config(ConfigInputs(user_file=user_file, env={}))
    assert result.config is not None, [str(p) for p in result.problems]
    team = result.config.tiers["team"]
    assert team.base_url is None and team.endpoints == ["http://a:8000/v1", "http://b:8000/v1"]
