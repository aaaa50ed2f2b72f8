"""Config load time against file size, and server responsiveness while a large file reloads.

    python scripts/bench_config.py [--kb 400] [--runs 5]

Prints one JSON object:
- `load_ms`: `load_config` on a workspace file of `--kb` KB of `[routes.*]` tables (p50/p95
  over `--runs`), and the same for a file a quarter of the size (the baseline, same run);
  `ratio` near 4 means linear in the number of tables (the old loader was quadratic: 2000
  tables took 3 s, 8000 took 48 s).
- `lsp`: the real server over stdio with that file as its trusted workspace config:
  `textDocument/completion` round trips (p50/p95/max ms) while nothing happens (baseline)
  and while the file is reloaded again and again (the reload runs off the event loop, so
  the two should be close).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))

from lsprotocol import types  # noqa: E402
from pytest_lsp import client_capabilities  # noqa: E402
from pytest_lsp.client import make_test_lsp_client  # noqa: E402

from tinyarms.config import ConfigInputs, load_config  # noqa: E402

ROUTE = '[routes.r{i}]\nrole = "chat"\nthreshold = 0.5\nutterances = ["do the thing number {i}", "another one {i}"]\n'


def routes_file(kb: int) -> str:
    parts, size, i = [], 0, 0
    while size < kb * 1024:
        parts.append(ROUTE.format(i=i))
        size += len(parts[-1])
        i += 1
    return "".join(parts)


def pct(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
    }


def setup(root: Path, text: str) -> tuple[Path, dict[str, str]]:
    workspace = root / "ws"
    workspace.mkdir(parents=True)
    (workspace / ".tinyarms.toml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYARMS_")}
    env.update(
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_STATE_HOME=str(root / "state"),
        XDG_DATA_HOME=str(root / "data"),
        PYTHONPATH=str(REPO / "server"),
    )
    (root / "config" / "tinyarms").mkdir(parents=True)
    (root / "config" / "tinyarms" / "config.toml").write_text(
        f"trusted_workspaces = [{json.dumps(str(workspace))}]\n[roles.autocomplete]\nenabled = false\n"
    )
    return workspace, env


def load_times(text: str, runs: int) -> tuple[list[float], int]:
    with tempfile.TemporaryDirectory() as tmp:
        workspace, _ = setup(Path(tmp), text)
        times, tables = [], 0
        for _ in range(runs):
            started = time.perf_counter()
            result = load_config(ConfigInputs(workspace=workspace, user_file=Path(tmp) / "none.toml", env={}))
            times.append((time.perf_counter() - started) * 1000)
            assert result.config is not None, [str(p) for p in result.problems][:3]
            tables = len(result.config.routes)
        return times, tables


async def completion_latency(client: Any, uri: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await client.text_document_completion_async(
            types.CompletionParams(text_document=types.TextDocumentIdentifier(uri), position=types.Position(0, 3))
        )
        times.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.01)
    return times


async def lsp_figures(text: str, reloads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        workspace, env = setup(Path(tmp), text)
        ws_file = workspace / ".tinyarms.toml"
        client = make_test_lsp_client()
        await client.start_io(sys.executable, "-P", "-m", "tinyarms", "serve", env=env)
        uri = workspace.as_uri()
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=uri,
                workspace_folders=[types.WorkspaceFolder(uri=uri, name="ws")],
            )
        )
        doc = (workspace / "a.py").as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(doc, "python", 1, "x = 1\n"))
        )
        await completion_latency(client, doc, 5)  # warm up
        idle = await completion_latency(client, doc, 40)
        busy: list[float] = []
        started = time.perf_counter()
        for n in range(reloads):
            ws_file.write_text(text + f"# edit {n}\n")
            client.workspace_did_change_watched_files(
                types.DidChangeWatchedFilesParams([types.FileEvent(ws_file.as_uri(), types.FileChangeType.Changed)])
            )
            busy += await completion_latency(client, doc, 10)
        elapsed = time.perf_counter() - started
        await client.shutdown_session()
        return {
            "idle_completion_ms": pct(idle),
            "during_reloads_completion_ms": pct(busy),
            "reloads": reloads,
            "seconds": round(elapsed, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=400)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reloads", type=int, default=5)
    args = parser.parse_args()
    big, small = routes_file(args.kb), routes_file(args.kb // 4)
    big_times, big_tables = load_times(big, args.runs)
    small_times, small_tables = load_times(small, args.runs)
    out = {
        "load_ms": {
            f"{len(big) // 1024}KB": {"tables": big_tables, **pct(big_times)},
            f"{len(small) // 1024}KB (baseline)": {"tables": small_tables, **pct(small_times)},
            "ratio_p50": round(statistics.median(big_times) / statistics.median(small_times), 2),
            "tables_ratio": round(big_tables / small_tables, 2),
        },
        "lsp": asyncio.run(lsp_figures(big, args.reloads)),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
