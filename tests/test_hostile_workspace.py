"""A cloned repository runs nothing: every tinyarms process keeps the current folder off sys.path.

The workspace holds `queue.py`, `platformdirs.py`, `attrs.py` and `tinyarms/__init__.py`,
each of which appends its name to a marker file when imported. Completion (the real model
child), ask (the real local chat model), route (the real encoder) and `config show` run in
it: from the CLI (the shape of the console script pip writes, and `python -P -m`), and from
the exact command lines both editor clients build (`tinyarms setup nvim`'s cmd, and
vscode-client/src/launch.ts run with Node). No marker may appear. A control run of plain
`python -m tinyarms` in the folder shows the marker does appear when the folder is on
sys.path, so the check can fail.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from conftest import REPO, isolated_env

CLIENT = REPO / "vscode-client"
HOSTILE_MODULES = ("queue.py", "platformdirs.py", "attrs.py", "tinyarms/__init__.py")
SOURCE = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return "


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hostile")
    workspace, marker = root / "clone", root / "marker.txt"
    (workspace / "tinyarms").mkdir(parents=True)
    for name in HOSTILE_MODULES:
        (workspace / name).write_text(f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\n")
    (workspace / "a.py").write_text(SOURCE)
    (workspace / ".git").mkdir()
    env = isolated_env(root / "home")
    user_file = Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"
    user_file.parent.mkdir(parents=True)
    # Local answers, kept short, with room for a busy machine.
    user_file.write_text(
        'extends = "local-only"\n[roles.chat]\nmax_tokens = 12\n'
        "[tiers.local]\ntimeout_s = 600.0\n[reliability]\ndeadline_s = 600.0\n"
    )
    return {"workspace": workspace, "marker": marker, "env": env}


def marker_text(hostile: dict[str, Any]) -> str:
    marker: Path = hostile["marker"]
    return marker.read_text() if marker.exists() else ""


def test_the_hostile_modules_do_run_when_the_folder_is_on_sys_path(hostile: dict[str, Any]) -> None:
    """The control: without -P, `python -m` imports the clone's tinyarms/__init__.py."""
    subprocess.run(
        [sys.executable, "-m", "tinyarms", "--version"],
        cwd=hostile["workspace"],
        env=hostile["env"],
        capture_output=True,
        timeout=60,
    )
    assert "tinyarms/__init__.py" in marker_text(hostile)
    hostile["marker"].unlink()


@pytest.mark.parametrize(
    "args",
    [
        ["config", "show"],
        ["complete", "a.py", "--line", "5", "--col", "11", "--json"],
        ["route", "--json", "explain", "this", "function"],
    ],
    ids=["config show", "complete", "route"],
)
@pytest.mark.parametrize("launcher", ["console script", "python -P -m"])
def test_cli_runs_nothing_from_the_folder(hostile: dict[str, Any], args: list[str], launcher: str) -> None:
    if launcher == "console script":  # what pip writes into bin/tinyarms
        script = hostile["workspace"].parent / "bin-tinyarms"
        script.write_text("import sys\nfrom tinyarms.cli import main\nsys.exit(main())\n")
        command = [sys.executable, str(script), *args]
    else:
        command = [sys.executable, "-P", "-m", "tinyarms", *args]
    result = subprocess.run(
        command, cwd=hostile["workspace"], env=hostile["env"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
    assert marker_text(hostile) == ""


def test_ask_from_the_cli_runs_nothing_from_the_folder(hostile: dict[str, Any]) -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "tinyarms", "ask", "--role", "chat", "say hello"],
        cwd=hostile["workspace"],
        env=hostile["env"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert marker_text(hostile) == ""


# -- the editors' launch commands ----------------------------------------------------------


def nvim_command(hostile: dict[str, Any]) -> list[str]:
    """The cmd in the init.lua lines `tinyarms setup nvim` prints."""
    out = subprocess.run(
        [sys.executable, "-P", "-m", "tinyarms", "setup", "nvim"],
        env=hostile["env"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    match = re.search(r"cmd = \{ (.*?) \} \}\)", out)
    assert match, out
    return [json.loads(part) for part in re.findall(r'"(?:[^"\\]|\\.)*"', match.group(1))]


def vscode_launch(hostile: dict[str, Any], function: str, *args: Any) -> dict[str, Any]:
    """Call a function of vscode-client/src/launch.ts with Node; returns its Launch."""
    if not (CLIENT / "node_modules" / "esbuild").exists():
        pytest.fail("vscode-client/node_modules is missing: run `npm ci` in vscode-client (scripts/test.sh does)")
    bundle = hostile["workspace"].parent / "launch.cjs"
    if not bundle.exists():
        build = (
            "require('esbuild').buildSync({entryPoints: [process.argv[1]], outfile: process.argv[2], bundle: true,"
            " platform: 'node', format: 'cjs', logLevel: 'warning'})"
        )
        subprocess.run(
            ["node", "-e", build, str(CLIENT / "src" / "launch.ts"), str(bundle)], cwd=CLIENT, check=True, timeout=120
        )
    call = f"const l = require({json.dumps(str(bundle))}); const a = JSON.parse(process.argv[1]);"
    call += f" a.splice(2, 0, process.env); process.stdout.write(JSON.stringify(l.{function}(...a)));"
    if function == "codeLaunch":
        call = call.replace("a.splice(2, 0, process.env)", "a.push(process.env)")
    out = subprocess.run(
        ["node", "-e", call, json.dumps(list(args))],
        env=hostile["env"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    launch: dict[str, Any] = json.loads(out)
    return launch


def test_vscode_launch_uses_safe_path_and_drops_relative_pythonpath(hostile: dict[str, Any]) -> None:
    env = dict(hostile["env"], PYTHONPATH=f"{hostile['env']['PYTHONPATH']}:.::relative/dir")
    esbuild_env = dict(hostile, env=env)
    launch = vscode_launch(esbuild_env, "serverLaunch", sys.executable, False, str(hostile["workspace"]))
    assert launch["args"] == ["-P", "-m", "tinyarms", "serve", "-v"]
    assert launch["options"]["env"]["PYTHONPATH"] == hostile["env"]["PYTHONPATH"]


@pytest.mark.parametrize("function", ["cliLaunch", "codeLaunch"])
def test_vscode_cli_and_probe_run_nothing_from_the_folder(hostile: dict[str, Any], function: str) -> None:
    if function == "cliLaunch":
        launch = vscode_launch(hostile, function, sys.executable, ["config", "show"], str(hostile["workspace"]))
    else:
        launch = vscode_launch(hostile, function, sys.executable, "import tinyarms; print(tinyarms.__version__)")
    result = subprocess.run(
        [launch["command"], *launch["args"]],
        env=launch["options"]["env"],
        cwd=launch["options"].get("cwd") or hostile["workspace"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
    assert marker_text(hostile) == ""


@pytest_asyncio.fixture(scope="module", params=["neovim", "visual-studio-code"], loop_scope="module")
async def editor_server(request: pytest.FixtureRequest, hostile: dict[str, Any]) -> AsyncIterator[LanguageClient]:
    """The server started by each editor's own command line, in the clone, as that editor."""
    workspace = hostile["workspace"]
    if request.param == "neovim":
        command, env, cwd = nvim_command(hostile), hostile["env"], str(workspace)
    else:
        launch = vscode_launch(hostile, "serverLaunch", sys.executable, False, str(workspace))
        command, env, cwd = [launch["command"], *launch["args"]], launch["options"]["env"], launch["options"]["cwd"]
    assert "-P" in command
    client = make_test_lsp_client()

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register_capability(params: types.RegistrationParams) -> None:
        return None  # the VS Code preset watches files: accept, as VS Code does

    await client.start_io(command[0], *command[1:], env=env, cwd=cwd)
    uri = workspace.as_uri()
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            root_uri=uri,
            workspace_folders=[types.WorkspaceFolder(uri=uri, name="clone")],
            initialization_options={"workspaceTrusted": False},
        )
    )
    yield client
    await client.shutdown_session()


async def command(client: LanguageClient, name: str, argument: dict[str, Any] | None = None) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=name, arguments=[argument] if argument is not None else [])
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_editor_launch_runs_nothing_from_the_folder(
    editor_server: LanguageClient, hostile: dict[str, Any]
) -> None:
    client = editor_server
    shown = await command(client, "tinyarms.showConfig")
    assert shown["config"] is not None
    uri = (hostile["workspace"] / "a.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=SOURCE))
    )
    for _ in range(600):  # the model child loads in the background
        status = await command(client, "tinyarms.status")
        state = (status.get("model") or {}).get("autocomplete", {}).get("state")
        if state in ("ready", "failed"):
            break
        await asyncio.sleep(0.2)
    assert state == "ready", status
    completion = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri), position=types.Position(5, 11))
    )
    assert completion is not None
    decision = await command(client, "tinyarms.route", {"text": "explain what this function does"})
    assert decision["role"]
    answer = await command(client, "tinyarms.ask", {"text": "say hello", "role": "chat"})
    assert isinstance(answer["text"], str)
    assert marker_text(hostile) == ""
