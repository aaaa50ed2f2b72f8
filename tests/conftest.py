"""Shared test helpers: an isolated environment and a real server over stdio."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from faultserver import FaultServer

REPO = Path(__file__).resolve().parents[1]
SERVER_DIR = REPO / "server"

# The two editors whose capabilities every end-to-end test runs with.
CLIENTS = ["visual-studio-code", "neovim"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A process environment with its own config/state/data dirs and no TINYARMS_* vars.

    The cache dir is shared, so model files assembled once are reused across tests.
    """
    return isolated_env(tmp_path / "home")


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    """One scripted loopback HTTP server (tests/faultserver.py) per test module."""
    with FaultServer() as server:
        yield server


@pytest_asyncio.fixture
async def fresh_tiers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """In-process tier calls with their own state/data/cache dirs and no cooldowns left by
    another test; run_role pools one HTTP client per event loop, so this test's is closed after."""
    from tinyarms import tiers

    for kind in ("STATE", "DATA", "CACHE"):
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(tmp_path / kind.lower()))
    tiers.reset_cooldowns()
    yield
    tiers.reset_cooldowns()
    await tiers.aclose()


def isolated_env(home: Path) -> dict[str, str]:
    """The `env` fixture's environment under `home` (also for module-scoped servers)."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("TINYARMS_")}
    result.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_DATA_HOME=str(home / "data"),
        PYTHONPATH=os.pathsep.join([str(SERVER_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return result


@pytest.fixture
def user_config(env: dict[str, str]) -> Path:
    """Where the server under `env` looks for the user file (not created)."""
    return Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    return folder


def run_tinyarms(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`tinyarms ARGS` as a user runs it, with no terminal on stdin unless `stdin` is given."""
    return subprocess.run(
        [sys.executable, "-P", "-m", "tinyarms", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def server_command(*extra: str) -> list[str]:
    # -P: how every client starts it (the current folder is not on sys.path), see README.
    return [sys.executable, "-P", "-m", "tinyarms", "serve", "-v", *extra]


def capabilities(client: str) -> types.ClientCapabilities:
    return client_capabilities(client)


async def start_client(
    client: str,
    workspace: Path,
    env: dict[str, str],
    *,
    initialization_options: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    caps: types.ClientCapabilities | None = None,
) -> LanguageClient:
    """Start the real server over stdio and run initialize/initialized like `client` would."""
    config = ClientServerConfig(server_command=server_command(), server_env=env)
    lsp = await config.start()
    assert isinstance(lsp, LanguageClient)
    if settings is not None:
        lsp.set_configuration({"tinyarms": settings})

    @lsp.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(params: types.RegistrationParams) -> None:
        lsp.registrations = getattr(lsp, "registrations", []) + list(params.registrations)  # type: ignore[attr-defined]

    uri = workspace.as_uri()
    lsp.initialize_result = await lsp.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=caps or capabilities(client),
            root_uri=uri,
            workspace_folders=[types.WorkspaceFolder(uri=uri, name=workspace.name)],
            initialization_options=initialization_options,
        )
    )
    return lsp


@pytest.fixture(params=CLIENTS)
def client_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def lsp_factory(
    client_name: str, workspace: Path, env: dict[str, str]
) -> AsyncIterator[Callable[..., Any]]:
    """Call `await lsp_factory(**kwargs)` to start a server; it is shut down after the test."""
    started: list[LanguageClient] = []

    async def make(**kwargs: Any) -> LanguageClient:
        lsp = await start_client(client_name, workspace, env, **kwargs)
        started.append(lsp)
        return lsp

    yield make
    for lsp in started:
        try:
            await lsp.shutdown_session()
        except Exception:
            await lsp.stop()


def acceptance_counts(stats_stdout: str) -> dict[str, int]:
    """The all-models row of `tinyarms stats`' autocomplete acceptance table, as numbers."""
    section = stats_stdout.split("autocomplete acceptance", 1)
    assert len(section) == 2, f"tinyarms stats shows no autocomplete acceptance table:\n{stats_stdout}"
    row = next((line for line in section[1].splitlines() if "(all)" in line), "")
    assert row, f"no (all) row in the acceptance table:\n{stats_stdout}"
    numbers = [int(n) for n in re.findall(r"\b\d+\b", row.split("(all)", 1)[1])[:4]]
    return dict(zip(["shown", "accepted", "partial", "dismissed"], numbers, strict=True))
