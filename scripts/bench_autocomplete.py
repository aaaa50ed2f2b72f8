"""Benchmark: autocomplete latency and quality with the real server and model. Prints JSON.

1. Typing replay over LSP: the real server over stdio opens Python standard library files
   (chosen deterministically; the project did not write them), clears chosen lines and
   types them back character by character: a didChange and an inlineCompletion request per
   character, no client debounce. End-to-end latency (p50/p95/max), the share of empty
   answers, and the share of answers whose first characters match what the file really
   continues with.
2. Baseline in the same run: the prompts of the requests that generated, sent straight to
   llama-cpp-python in this process (no server, no cache reuse), and the ratio.
3. Quality: exact match and edit similarity of the first line on a sample of
   HumanEval-SingleLineInfilling (../shared/data/, never downloaded), whole line, with latency.
4. IPC: the round trip of a no-op request to the model child process.

    python scripts/bench_autocomplete.py [--quick] [--model embedded:gemma3-270m]

The machine is shared and noisy: read medians and ratios, not single numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))
# ../shared/data relative to the repository (a git worktree may sit one level deeper).
HUMANEVAL = next(
    (
        folder / "shared" / "data" / "HumanEval-SingleLineInfilling.jsonl.gz"
        for folder in REPO.parents
        if (folder / "shared" / "data" / "HumanEval-SingleLineInfilling.jsonl.gz").is_file()
    ),
    REPO.parent / "shared" / "data" / "HumanEval-SingleLineInfilling.jsonl.gz",
)
MATCH_CHARS = 5  # an answer "matches" when its first characters (up to 5) are what the file has


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "max": round(ordered[-1], 1),
    }


# -- inputs -------------------------------------------------------------------------------


def stdlib_files(count: int) -> list[Path]:
    """Every k-th mid-sized module of the standard library, in name order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in sorted(stdlib.glob("*.py")) if 8_000 <= p.stat().st_size <= 60_000]
    stride = max(1, len(files) // count)
    return files[::stride][:count]


def pick_lines(lines: list[str], spots: int, per_spot: int) -> list[int]:
    """`spots` places spread over the file past its header; at each, the next `per_spot`
    code lines (not comments, strings or decorators), as someone writing a few lines."""
    candidates = [
        i
        for i, line in enumerate(lines)
        if i >= 40
        and 12 <= len(line.strip()) <= 60
        and not line.strip().startswith(("#", '"', "'", "@"))
        and line.isascii()
    ]
    chosen: list[int] = []
    stride = max(1, len(candidates) // max(spots, 1))
    for spot in candidates[stride // 2 :: stride][:spots]:
        chosen += [c for c in candidates if spot <= c < spot + 4 * per_spot][:per_spot]
    return sorted(set(chosen))


def humaneval_sample(count: int) -> list[dict[str, Any]]:
    with gzip.open(HUMANEVAL, "rt") as f:
        rows = [json.loads(line) for line in f]
    rows.sort(key=lambda r: r["task_id"])
    stride = max(1, len(rows) // count)
    return rows[::stride][:count]


# -- 1. typing replay over LSP -------------------------------------------------------------


async def typing_replay(spec: str, files: list[Path], spots: int, per_spot: int, interval_ms: float) -> dict[str, Any]:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    home = Path(tempfile.mkdtemp(prefix="tinyarms-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYARMS_")}
    env.update(
        PYTHONPATH=str(REPO / "server"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        TINYARMS_TIERS__LOCAL__MODEL=json.dumps(spec),
        TINYARMS_ROLES__AUTOCOMPLETE__TIER='"local"',
        HF_HUB_OFFLINE="1",
    )
    client = LanguageClient("bench", "1")
    statuses: list[Any] = []

    @client.feature("tinyarms/status")
    def on_status(params: Any) -> None:
        statuses.append(params)

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: Any) -> None:
        pass

    verbose = ["-vv"] if os.environ.get("BENCH_TRACE") else []
    await client.start_io(sys.executable, "-P", "-m", "tinyarms", "serve", *verbose, env=env)
    drain = asyncio.ensure_future(_drain(client._server.stderr, bool(verbose)))  # type: ignore[union-attr]
    caps = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            synchronization=types.TextDocumentSyncClientCapabilities(),
        ),
        window=types.WindowClientCapabilities(work_done_progress=False),
    )
    await client.initialize_async(types.InitializeParams(capabilities=caps, root_uri=home.as_uri()))
    client.initialized(types.InitializedParams())
    loaded = time.perf_counter()
    while True:
        status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="tinyarms.status"))
        state = ((status or {}).get("model") or {}).get("autocomplete", {})
        if state.get("state") == "ready":
            break
        if state.get("state") == "failed" or time.perf_counter() - loaded > 300:
            raise SystemExit(f"model did not load: {state}")
        await asyncio.sleep(0.1)
    load_s = time.perf_counter() - loaded

    records: list[dict[str, Any]] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        uri = path.as_uri()
        version = 1
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
            )
        )
        for number in pick_lines(lines, spots, per_spot):
            original = lines[number]
            indent = original[: len(original) - len(original.lstrip())]
            body = original[len(indent) :]

            def change(start: int, end: int, new: str, number: int = number, uri: str = uri) -> None:
                nonlocal version
                version += 1
                client.text_document_did_change(
                    types.DidChangeTextDocumentParams(
                        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                        content_changes=[
                            types.TextDocumentContentChangePartial(
                                range=types.Range(types.Position(number, start), types.Position(number, end)), text=new
                            )
                        ],
                    )
                )

            change(len(indent), len(original), "")
            lines[number] = indent
            for typed in range(len(body)):
                if typed:
                    change(len(indent) + typed - 1, len(indent) + typed - 1, body[typed - 1])
                    lines[number] = indent + body[:typed]
                column = len(indent) + typed
                seen = len(statuses)
                started = time.perf_counter()
                result = await client.text_document_inline_completion_async(
                    types.InlineCompletionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri),
                        position=types.Position(number, column),
                        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
                    )
                )
                latency = (time.perf_counter() - started) * 1000
                suggestion = ""
                if result and result.items:
                    item = result.items[0]
                    insert = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
                    start = item.range.start.character if item.range else column
                    suggestion = insert[column - start :]
                sources = [s for s in statuses[seen:] if _get(s, "kind") == "completion"]
                truth = body[typed:]
                record = {
                    "ms": latency,
                    "empty": not suggestion,
                    "match": bool(suggestion) and truth.startswith(suggestion.split("\n")[0][:MATCH_CHARS]),
                    "source": _get(sources[-1], "source") if sources else "empty",
                    "server_ms": _get(sources[-1], "elapsed_ms") if sources else None,
                }
                if record["source"] == "model":
                    record["prompt"] = (list(lines), number, column, suggestion)
                records.append(record)
                if os.environ.get("BENCH_TRACE"):
                    print(
                        path.name,
                        number,
                        typed,
                        record["source"],
                        round(latency),
                        repr(suggestion[:20]),
                        repr(truth[:20]),
                        file=sys.stderr,
                    )
                if interval_ms:
                    await asyncio.sleep(interval_ms / 1000)
            change(len(indent) + len(body) - 1, len(indent) + len(body) - 1, body[-1])
            lines[number] = original
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="tinyarms.status"))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    drain.cancel()

    latencies = [r["ms"] for r in records]
    answered = [r for r in records if not r["empty"]]
    by_source: dict[str, list[float]] = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(r["ms"])
    overhead = [r["ms"] - r["server_ms"] for r in records if r["server_ms"] is not None]
    return {
        "model_load_s": round(load_s, 2),
        "files": [p.name for p in files],
        "requests": len(records),
        "latency_ms": summary(latencies),
        "empty_share": round(1 - len(answered) / max(1, len(records)), 3),
        "match_share_of_all": round(sum(r["match"] for r in records) / max(1, len(records)), 3),
        "match_share_of_answers": round(sum(r["match"] for r in answered) / max(1, len(answered)), 3),
        "latency_ms_by_source": {k: summary(v) for k, v in sorted(by_source.items())},
        "lsp_overhead_ms": summary(overhead),
        "engine_counts": ((status or {}).get("model") or {}).get("autocomplete", {}).get("counts"),
        "_records": records,
    }


async def _drain(stream: Any, echo: bool) -> None:
    """Read the server's stderr (a full pipe would block its logging)."""
    async for line in stream:
        if echo:
            sys.stderr.write(line.decode(errors="replace"))


def _get(params: Any, key: str) -> Any:
    return params.get(key) if isinstance(params, dict) else getattr(params, key, None)


# -- 2. direct llama-cpp-python baseline ---------------------------------------------------


def direct_baseline(spec: str, records: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """The same prompts straight to llama-cpp-python: fresh context each time (no cache
    reuse), greedy, generating until as much text as the server answered."""
    import llama_cpp

    from tinyarms.autocomplete.prompt import build
    from tinyarms.autocomplete.templates import PREFIX_ONLY
    from tinyarms.models.sources import resolve

    generating = [r for r in records if r["source"] == "model" and "prompt" in r]
    stride = max(1, len(generating) // max(count, 1))
    sample = generating[::stride][:count]
    if not sample:
        return {"n": 0}
    llm = llama_cpp.Llama(str(resolve(spec)), n_ctx=2048, n_threads=2, verbose=False)
    direct, server, ratios = [], [], []
    for record in sample:
        lines, number, column, suggestion = record["prompt"]
        prompt = build(lines, number, column)
        text = "".join(s for _, s in PREFIX_ONLY.segments(prompt.before, prompt.line_prefix, prompt.after))
        llm.reset()  # no cache reuse
        started = time.perf_counter()
        produced = ""
        for chunk in llm.create_completion(text, max_tokens=32, temperature=0.0, stream=True):
            produced += chunk["choices"][0]["text"]
            if len(produced) >= max(1, len(suggestion)) or "\n" in produced:
                break
        elapsed = (time.perf_counter() - started) * 1000
        direct.append(elapsed)
        server.append(record["ms"])
        ratios.append(record["ms"] / elapsed)
    llm.close()
    return {
        "n": len(sample),
        "direct_no_cache_ms": summary(direct),
        "server_end_to_end_ms": summary(server),
        "ratio_server_to_direct_p50": round(statistics.median(ratios), 3),
    }


# -- 3. HumanEval single-line infilling, and 4. IPC -------------------------------------------


async def engine_checks(spec: str, count: int) -> dict[str, Any]:
    from tinyarms.autocomplete.engine import CompletionEngine, CompletionRequest, detect_template
    from tinyarms.local_model import get_model

    model = get_model(spec, purpose="autocomplete")  # the server's settings (1 thread)
    await model.start()
    try:
        pings = [await model.ping() * 1000 for _ in range(300)]
        template = await detect_template(model)
        engine = CompletionEngine(model, template, model_name=spec, max_latency_ms=None, multiline=False)
        exact, similarity, latency = [], [], []
        for row in humaneval_sample(count):
            prefix, suffix = row["prompt"], row["suffix"]
            head, tail = prefix.split("\n"), suffix.split("\n")
            lines = head[:-1] + [head[-1] + tail[0]] + tail[1:]
            completion = await engine.complete(
                CompletionRequest(lines, len(head) - 1, len(head[-1]), doc=row["task_id"])
            )
            got = (head[-1] + completion.text).strip()
            want = row["canonical_solution"].split("\n")[0].strip()
            exact.append(got == want)
            similarity.append(edit_similarity(got, want))
            latency.append(completion.elapsed_ms)
        return {
            "ipc_roundtrip_ms": {
                "p50": round(statistics.median(pings), 3),
                "p95": round(sorted(pings)[int(0.95 * len(pings))], 3),
            },
            "template": template.name,
            "humaneval_single_line": {
                "n": len(exact),
                "exact_match": round(sum(exact) / max(1, len(exact)), 3),
                "edit_similarity": round(statistics.mean(similarity), 3) if similarity else None,
                "latency_ms": summary(latency),
            },
        }
    finally:
        await model.shutdown()


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein distance / the longer length."""
    if not a and not b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1 - previous[-1] / max(len(a), len(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller sample (a couple of minutes)")
    parser.add_argument("--model", default="embedded:gemma3-270m")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="pause between keystrokes (default none)")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    files, spots, per_spot, baseline_n, humaneval_n = (2, 1, 3, 8, 10) if args.quick else (6, 2, 3, 20, 30)
    started = time.perf_counter()
    replay = asyncio.run(typing_replay(args.model, stdlib_files(files), spots, per_spot, args.interval_ms))
    records = replay.pop("_records")
    result: dict[str, Any] = {
        "model": args.model,
        "quick": args.quick,
        "interval_ms": args.interval_ms,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "typing_replay": replay,
        "baseline_direct_llama_cpp": direct_baseline(args.model, records, baseline_n),
    }
    if not args.skip_quality:
        result.update(asyncio.run(engine_checks(args.model, humaneval_n)))
    typing = replay["latency_ms"]
    result["targets"] = {
        "p50_le_100ms": typing.get("p50", 1e9) <= 100,
        "p95_le_200ms": typing.get("p95", 1e9) <= 200,
        "empty_le_50pct": replay["empty_share"] <= 0.5,
        "server_le_1.2x_direct": result["baseline_direct_llama_cpp"].get("ratio_server_to_direct_p50", 1e9) <= 1.2,
    }
    result["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
