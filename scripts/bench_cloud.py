"""Cloud-tier client benchmark, printing JSON.

1. Overhead: the same streamed request to the same loopback server (tests/faultserver.py,
   in its own process), once through raw httpx + SSE parsing and once through
   tinyarms.tiers.run_role (backend, retry loop, ledger write, trace append; cache off),
   interleaved so both see the same machine noise. p50/p95 per request and their ratio.
2. Fault matrix: every scripted fault x provider x (with / without a healthy fallback
   tier), each request bounded by an outer timeout: answered, clear errors, hangs, lost.

The machine is shared and noisy: read medians and ratios, not absolute numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

import httpx  # noqa: E402

from tinyarms import tiers  # noqa: E402
from tinyarms.config import Config  # noqa: E402
from tinyarms.config.validate import validate  # noqa: E402

QUESTION = [{"role": "user", "content": "What does this function return?"}]
FAULTS = ["429now", "500", "refused", "slow", "cut", "badjson", "schema", "empty"]
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}


def pct(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(chain: list[dict[str, Any]], **tables: Any) -> Config:
    names = [f"t{i}" for i in range(len(chain))]
    data: dict[str, Any] = {
        "tiers": dict(zip(names, chain, strict=True)),
        "roles": {"chat": {"tier": names[0], "escalate_to": names[1:]}},
        "cache": {"enabled": False},
        **tables,
    }
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


async def raw_request(client: httpx.AsyncClient, url: str) -> str:
    body = {"model": "ok", "messages": QUESTION, "stream": True, "stream_options": {"include_usage": True}}
    text = ""
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:]).get("choices", []):
                    text += choice.get("delta", {}).get("content") or ""
    return text


async def overhead(url: str, n: int) -> dict[str, Any]:
    config = make_config([{"provider": "openai", "base_url": url, "model": "ok", "price": PRICE}])
    raw_ms: list[float] = []
    ours_ms: list[float] = []
    async with httpx.AsyncClient() as client:
        for _ in range(10):  # warm both paths: connections, imports, SQLite files
            await raw_request(client, url)
            await tiers.run_role(config, "chat", QUESTION)
        for _ in range(n):
            started = time.perf_counter()
            raw = await raw_request(client, url)
            raw_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            answer = await tiers.run_role(config, "chat", QUESTION)
            ours_ms.append((time.perf_counter() - started) * 1000)
            assert answer.text == raw
    return {
        "requests_each": n,
        "raw_httpx_ms": {"p50": pct(raw_ms, 50), "p95": pct(raw_ms, 95)},
        "tinyarms_ms": {"p50": pct(ours_ms, 50), "p95": pct(ours_ms, 95)},
        "p50_ratio": round(statistics.median(ours_ms) / statistics.median(raw_ms), 2),
        "p50_overhead_ms": round(statistics.median(ours_ms) - statistics.median(raw_ms), 3),
    }


async def fault_matrix(url: str, repeats: int) -> dict[str, Any]:
    refused = f"http://127.0.0.1:{closed_port()}/v1"
    counts = {"requests": 0, "answered": 0, "clear_errors": 0, "hangs": 0, "lost": 0}
    client_side_faults = 0
    by_fault: dict[str, dict[str, int]] = {}
    started_log = len(httpx.get(url.removesuffix("/v1") + "/log").json())
    for fault in FAULTS:
        row = by_fault.setdefault(fault, {"answered": 0, "clear_errors": 0, "hangs": 0, "lost": 0})
        for provider in ("openai", "anthropic"):
            for with_fallback in (True, False):
                for _ in range(repeats):
                    tiers.reset_cooldowns()
                    first = {
                        "provider": provider,
                        "base_url": refused if fault == "refused" else url,
                        "model": "ok" if fault == "refused" else fault,
                        "max_retries": 1,
                        "timeout_s": 0.5,
                    }
                    chain = [first]
                    if with_fallback:
                        chain.append({"provider": "openai", "base_url": url, "model": "ok"})
                    config = make_config(chain, reliability={"deadline_s": 3.0, "backoff_base_s": 0.02})
                    counts["requests"] += 1
                    try:
                        answer = await asyncio.wait_for(tiers.run_role(config, "chat", QUESTION), 15)
                        # One whole answer from the tier that claims it, never a cut or mixed one.
                        outcome = "answered" if answer.text == f"Answer from {answer.model}." else "lost"
                        trace = answer.trace
                    except tiers.AllTiersFailed as exc:
                        outcome = "clear_errors" if "failed" in str(exc) else "lost"
                        trace = exc.trace
                    except TimeoutError:
                        outcome, trace = "hangs", {}
                    except Exception:
                        outcome, trace = "lost", {}
                    counts[outcome] += 1
                    row[outcome] += 1
                    if fault == "refused":
                        client_side_faults += sum(s.get("errors", []).count("connect") for s in trace.get("steps", []))
    log = httpx.get(url.removesuffix("/v1") + "/log").json()[started_log:]
    injected = sum(1 for entry in log if entry["fault"] != "ok") + client_side_faults
    return {**counts, "faults_injected": injected, "by_fault": by_fault}


async def main() -> None:
    n = int(os.environ.get("BENCH_N", "200"))
    with tempfile.TemporaryDirectory() as home:
        for kind in ("STATE", "DATA", "CACHE"):
            os.environ[f"XDG_{kind}_HOME"] = f"{home}/{kind.lower()}"
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "faultserver.py")], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
            result = {
                "note": "shared noisy 2-core machine: compare the ratio, measured in the same run",
                "overhead": await overhead(url, n),
                "fault_matrix": await fault_matrix(url, repeats=2),
            }
            await tiers.aclose()
        finally:
            server.terminate()
            server.wait(10)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
