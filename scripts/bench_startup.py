"""Benchmark: how fast the server answers `initialize`, and how fast the first config is ready.

Prints JSON. The baseline, measured in the same run, is a bare pygls server (no tinyarms
code) answering the same `initialize`, so the ratio shows what tinyarms adds to start-up.

    python scripts/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
BARE_SERVER = "from pygls.lsp.server import LanguageServer; LanguageServer('bare', '0').start_io()"


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def read(stream: IO[bytes]) -> dict[str, Any]:
    header = b""
    while not header.endswith(b"\r\n\r\n"):
        header += stream.read(1)
    length = next(
        int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    message: dict[str, Any] = json.loads(stream.read(length))
    return message


def one_run(command: list[str], show_config: bool) -> tuple[float, float | None]:
    """(ms from process start to the initialize result, ms from `initialized` to showConfig)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "server")}
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdin and proc.stdout
    try:
        init = {"processId": None, "rootUri": None, "capabilities": {}}
        proc.stdin.write(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))
        proc.stdin.flush()
        while read(proc.stdout).get("id") != 1:
            pass
        initialize_ms = (time.perf_counter() - start) * 1000
        if not show_config:
            return initialize_ms, None
        ready = time.perf_counter()
        proc.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        command_params = {"command": "tinyarms.showConfig", "arguments": []}
        proc.stdin.write(
            frame({"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand", "params": command_params})
        )
        proc.stdin.flush()
        while (reply := read(proc.stdout)).get("id") != 2:
            pass
        assert reply["result"]["config"] is not None, reply
        return initialize_ms, (time.perf_counter() - ready) * 1000
    finally:
        proc.kill()
        proc.wait()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "max": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tinyarms_init, config_ready, bare_init = [], [], []
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        init_ms, ready_ms = one_run([sys.executable, "-P", "-m", "tinyarms", "serve"], show_config=True)
        tinyarms_init.append(init_ms)
        config_ready.append(ready_ms or 0.0)
        bare_init.append(one_run([sys.executable, "-c", BARE_SERVER], show_config=False)[0])
    result = {
        "runs": args.runs,
        "initialize_ms": summary(tinyarms_init),
        "baseline_bare_pygls_initialize_ms": summary(bare_init),
        "initialize_ratio_vs_baseline_p50": round(statistics.median(tinyarms_init) / statistics.median(bare_init), 2),
        "initialized_to_config_ready_ms": summary(config_ready),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
