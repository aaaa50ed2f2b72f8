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

Project context (issue 15), all on code the project did not write (the standard library's
`email` and `asyncio` packages), each with its own baseline measured in the same run:

5. Cross-file quality: holes in lines of one file that use a name another file of the
   package defines (`from .x import name` / `from . import x` then `x.name`), cut where the
   name starts; the same engine, model and holes with the other files' context (those files
   opened first, so in the ring buffer, and the definitions the file imports) vs without.
6. Single-file quality: HumanEval single-line infilling and single lines cut from stdlib
   files: the engine vs the same model called directly with a plain 1000-character prefix
   prompt (greedy, stop at newline); both see the same 1000 characters.
7. Typing replay over LSP on package files with the files they import opened first: with
   vs without context, and prefill at a new place (prefill_on_cursor) on vs off (four
   servers, same keystrokes; on and off run side by side, each place typed in one and
   then the other, so the load of a shared machine falls on both alike). At each new
   place the editor sends tinyarms/cursorMoved and the user pauses before typing; each
   pause (--pauses, default 0, 0.5, 1, 2 s) is reported on its own, so the dependence on
   it shows.
8. First completion after didOpen with prefill on vs off: the file's imports open first,
   the file opened, a reading pause, then typing every 100 ms until the first non-empty
   answer; and the latency of a keystroke sent while a prefill runs.
9. 200 open files: the context block's size against its cap, the real prompt tokens, and
   keystroke latency.

    python scripts/bench_autocomplete.py [--quick] [--model embedded:gemma3-270m] [--only context]

The machine is shared and noisy: read medians and ratios, not single numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import json
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from collections import Counter
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
    return sorted({number for spot in pick_spots(lines, spots, per_spot) for number in spot})


def pick_spots(lines: list[str], spots: int, per_spot: int) -> list[list[int]]:
    """pick_lines' places, each its own list of lines (the first is where the user moved to)."""
    candidates = [
        i
        for i, line in enumerate(lines)
        if i >= 40
        and 12 <= len(line.strip()) <= 60
        and not line.strip().startswith(("#", '"', "'", "@"))
        and line.isascii()
    ]
    stride = max(1, len(candidates) // max(spots, 1))
    return [
        [c for c in candidates if spot <= c < spot + 4 * per_spot][:per_spot]
        for spot in candidates[stride // 2 :: stride][:spots]
    ]


def humaneval_sample(count: int) -> list[dict[str, Any]]:
    with gzip.open(HUMANEVAL, "rt") as f:
        rows = [json.loads(line) for line in f]
    rows.sort(key=lambda r: r["task_id"])
    stride = max(1, len(rows) // count)
    return rows[::stride][:count]


# -- 1. typing replay over LSP -------------------------------------------------------------


def server_env(spec: str) -> tuple[Path, dict[str, str]]:
    """A server's home (its own config and state dirs) and environment, the model `spec` on the local tier."""
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
    return home, env


async def typing_replay(
    spec: str, files: list[Path], spots: int, per_spot: int, interval_ms: float, env_extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """`env_extra`: more TINYARMS_* settings (scripts/bench_remote_fim.py puts autocomplete on a remote tier)."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    home, env = server_env(spec)
    env.update(env_extra or {})
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
        "remote": ((status or {}).get("model") or {}).get("autocomplete", {}).get("remote"),
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


# -- 5-9. project context (issue 15) -----------------------------------------------------------

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PACKAGES = ("email", "asyncio")
WINDOW_CHARS = 1000  # what both sides of the single-file comparison see before the cursor


def package_files() -> list[tuple[Path, list[Path]]]:
    """(file, the files of its package it imports) for mid-sized files of PACKAGES."""
    import cross_file_holes

    found = []
    for package in PACKAGES:
        for path in sorted((STDLIB / package).glob("*.py")):
            if path.name.startswith("__") or not 4_000 <= path.stat().st_size <= 60_000:
                continue
            if others := cross_file_holes.imported_files(path):
                found.append((path, others))
    return found


def windowed(lines: list[str], line: int, column: int) -> tuple[list[str], int]:
    """The document cut to the WINDOW_CHARS before the cursor (whole lines) and the line
    itself up to the cursor; returns (lines, the cursor's line in them)."""
    start, used = line, len(lines[line][:column])
    while start > 0 and used + len(lines[start - 1]) + 1 <= WINDOW_CHARS:
        start -= 1
        used += len(lines[start]) + 1
    return lines[start:line] + [lines[line][:column]], line - start


CROSS_CONDITIONS = ("without_context", "with_context")


async def quality_runs(
    spec: str,
    cross_n: int,
    single_n: int,
    seed: int = 15,
    context_tokens: int = 512,
    conditions: tuple[str, ...] = CROSS_CONDITIONS,
    threads: int = 2,
) -> dict[str, Any]:
    """5 and 6 in one model process. `cross_n` holes a package (scripts/cross_file_holes.py),
    `single_n` HumanEval rows and stdlib lines each. No latency budget here, so the model
    runs on `threads` threads (the server uses 1, for the keystroke latency); both sides of
    each comparison use the same."""
    import re

    import attrs

    import cross_file_holes
    from tinyarms.autocomplete.context import Project
    from tinyarms.autocomplete.engine import CompletionEngine, CompletionRequest, detect_template
    from tinyarms.local_model import get_model

    model = get_model(spec, purpose="autocomplete", n_threads=threads)
    await model.start()
    try:
        template = await detect_template(model)
        engine = CompletionEngine(model, template, model_name=spec, max_latency_ms=None, multiline="never")

        async def complete(lines: list[str], line: int, column: int, doc: str, block: Any = None) -> str:
            window, row = windowed(lines, line, column)
            result = await engine.complete(CompletionRequest(window, row, len(window[row]), doc=doc, context=block))
            return result.text

        # 5. cross-file: all holes without context, then all with (same engine, model, holes)
        holes = cross_file_holes.holes(cross_n, seed)
        rows: dict[str, list[dict[str, Any]]] = {condition: [] for condition in conditions}
        blocks = []
        ratio = 1.0

        async def count_tokens(text: str) -> int:
            return len(await model.tokenize(text))

        for hole in holes:
            path: Path = hole["path"]
            lines = path.read_text(encoding="utf-8").split("\n")
            root = hole["root"]  # the workspace: the folder holding the package (stdlib, site-packages)
            project = Project(max_tokens=context_tokens)
            project.set_roots([root])
            for other in cross_file_holes.imported_files(path):  # opened before this file
                project.ring.add(other.as_uri(), project.label(other, ""), other.read_text().split("\n"), 0)
            # The block as the server has it while the line is typed: built before it
            # (the line empty but for its indentation).
            before = list(lines)
            before[hole["line"]] = lines[hole["line"]][: len(lines[hole["line"]]) - len(lines[hole["line"]].lstrip())]
            project.token_ratio = ratio  # as the server does: the cap in the model's own tokens

            async def build(project: Any = project, path: Path = path, before: list[str] = before) -> Any:
                return project.build(path.as_uri(), path, "\n".join(before), {})

            block = await project.measured(path.as_uri(), build, count_tokens)
            ratio = project.token_ratio
            defined = re.compile(rf"(def|class) {re.escape(hole['name'])}\b|^# {re.escape(hole['name'])}\s*[:=]", re.M)
            blocks.append((block, bool(block and defined.search(block.comments))))
        started = time.perf_counter()
        for condition in rows:
            for index, (hole, (block, _)) in enumerate(zip(holes, blocks, strict=True)):
                if index % 12 == 0:
                    print(f"  {condition} {index}/{len(holes)} {time.perf_counter() - started:.0f}s", file=sys.stderr)
                # The WINDOW_CHARS before the cursor, as in the single-file section (the
                # server's window is 600-2000 characters); the block's header, the file's
                # imports, goes before it when they are above it, as the engine does.
                lines = hole["path"].read_text(encoding="utf-8").split("\n")
                window, row = windowed(lines, hole["line"], hole["column"])
                shift = hole["line"] - row
                context = {
                    "without_context": None,
                    "with_context": block,
                    # ablation: the other files' definitions and chunks, without this file's imports
                    "with_context_no_header": attrs.evolve(block, header="") if block else None,
                }[condition]
                if context is not None:
                    context = attrs.evolve(context, header_end=context.header_end - shift)
                request = CompletionRequest(
                    window, row, len(window[row]), doc=f"{condition}:{hole['path']}", context=context
                )
                text = (await engine.complete(request)).text
                truth = hole["truth"].strip()
                rows[condition].append(
                    {
                        "exact": text.strip() == truth,
                        "sim": edit_similarity(text.strip(), truth),
                        # the other file's name itself, whatever the rest of the line
                        "name": re.match(rf"{re.escape(hole['name'])}\b", text.strip()) is not None,
                    }
                )
                if os.environ.get("BENCH_TRACE"):
                    print(condition, hole["path"].name, hole["line"], repr(text), repr(truth), file=sys.stderr)
        inside = [found for _, found in blocks]
        cross: dict[str, Any] = {
            "holes": len(holes),
            "rule": f"scripts/cross_file_holes.py --per-package {cross_n} --seed {seed}",
            "packages": sorted({h["package"] for h in holes}),
            "files": len({h["path"] for h in holes}),
            "context_tokens_cap": context_tokens,
            "context_tokens": summary([float(b.tokens or 0 if b else 0) for b, _ in blocks]),
            "definition_in_block_share": round(sum(inside) / max(1, len(inside)), 3),
        }

        def scores(results: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "n": len(results),
                "exact_match": round(sum(r["exact"] for r in results) / max(1, len(results)), 3),
                "edit_similarity": round(statistics.mean(r["sim"] for r in results), 3) if results else None,
                "name_match": round(sum(r["name"] for r in results) / max(1, len(results)), 3),
            }

        for condition, results in rows.items():
            cross[condition] = scores(results)
            cross[condition + "_definition_in_block"] = scores(
                [r for r, found in zip(results, inside, strict=True) if found]
            )
        base = cross.get("without_context", {}).get("exact_match")
        for condition in rows:
            if condition != "without_context" and base:
                cross[f"exact_match_ratio{condition.removeprefix('with_context')}"] = round(
                    cross[condition]["exact_match"] / base, 2
                )
        print(json.dumps({"cross_file": cross}), file=sys.stderr, flush=True)

        # 6. single-file: HumanEval lines and stdlib lines, engine vs plain direct prompt
        cases = []
        for row in humaneval_sample(single_n):
            lines = row["prompt"].split("\n")
            solution = row["canonical_solution"].split("\n")[0]
            lines[-1] += solution[: len(solution) - len(solution.lstrip())]  # the line's indentation is given
            cases.append(("humaneval", lines, len(lines) - 1, len(lines[-1]), (lines[-1] + solution.lstrip()).strip()))
        for path in stdlib_files(max(2, -(-single_n // 3))):
            lines = path.read_text(encoding="utf-8").split("\n")
            for number in pick_lines(lines, 3, 1)[:3]:
                if sum(kind == "stdlib_lines" for kind, *_ in cases) >= single_n:
                    break
                original = lines[number]
                indent = len(original) - len(original.lstrip())
                cases.append(("stdlib_lines", lines[:number] + [original[:indent]], number, indent, original.strip()))
        single: dict[str, dict[str, list[Any]]] = {}
        engine_out = []
        for kind, lines, line, column, _truth in cases:
            engine_out.append(await complete(lines, line, column, f"single:{kind}:{line}"))
    finally:
        await model.shutdown()
    direct_out = direct_plain_prompt(spec, [(lines, line, column) for _, lines, line, column, _ in cases], threads)
    for (kind, lines, line, column, truth), mine, theirs in zip(cases, engine_out, direct_out, strict=True):
        prefix = lines[line][:column]
        for name, text in (("engine", mine), ("direct_plain_prompt", theirs)):
            got = (prefix + text).strip()
            bucket = single.setdefault(kind, {}).setdefault(name, [])
            bucket.append((got == truth, edit_similarity(got, truth)))
    single_summary = {
        kind: {
            name: {
                "n": len(values),
                "exact_match": round(sum(e for e, _ in values) / max(1, len(values)), 3),
                "edit_similarity": round(statistics.mean(s for _, s in values), 3),
            }
            for name, values in by_name.items()
        }
        for kind, by_name in single.items()
    }
    return {"cross_file": cross, "single_file": single_summary}


def direct_plain_prompt(spec: str, cases: list[tuple[list[str], int, int]], threads: int = 2) -> list[str]:
    """The same model straight through llama-cpp-python: the 1000 characters before the
    cursor as a plain prompt, greedy, stopped at the newline."""
    import llama_cpp

    from tinyarms.models.sources import resolve

    llm = llama_cpp.Llama(str(resolve(spec)), n_ctx=2048, n_threads=threads, verbose=False)
    out = []
    for lines, line, column in cases:
        window, row = windowed(lines, line, column)
        prompt = "\n".join(window)[-WINDOW_CHARS:]
        answer = llm.create_completion(prompt, max_tokens=48, temperature=0.0, stop=["\n"])
        out.append(str(answer["choices"][0]["text"]).split("\n")[0])  # type: ignore[index]
    llm.close()
    return out


class Session:
    """A real server over stdio, like an editor: open files, type, read the status."""

    def __init__(self, spec: str, settings: dict[str, Any]) -> None:
        self.spec, self.settings = spec, settings
        self.version: dict[str, int] = {}

    async def __aenter__(self) -> Session:
        from lsprotocol import types
        from pygls.lsp.client import LanguageClient

        home, env = server_env(self.spec)
        self.client = client = LanguageClient("bench", "1")

        @client.feature("tinyarms/status")
        def on_status(params: Any) -> None:
            pass

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: Any) -> None:
            pass

        await client.start_io(sys.executable, "-m", "tinyarms", "serve", env=env)
        self.drain = asyncio.ensure_future(_drain(client._server.stderr, False))  # type: ignore[union-attr]
        caps = types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities(),
                synchronization=types.TextDocumentSyncClientCapabilities(),
            ),
            window=types.WindowClientCapabilities(work_done_progress=False),
        )
        await client.initialize_async(
            types.InitializeParams(
                capabilities=caps,
                root_uri=STDLIB.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=STDLIB.as_uri(), name="stdlib")],
                initialization_options={"roles": {"autocomplete": self.settings}},
            )
        )
        client.initialized(types.InitializedParams())
        started = time.perf_counter()
        while (state := await self.state()).get("state") != "ready":
            if state.get("state") == "failed" or time.perf_counter() - started > 300:
                raise SystemExit(f"model did not load: {state}")
            await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()
        self.drain.cancel()

    async def state(self) -> dict[str, Any]:
        from lsprotocol import types

        command = types.ExecuteCommandParams(command="tinyarms.status")
        status = await self.client.workspace_execute_command_async(command)
        return dict(((status or {}).get("model") or {}).get("autocomplete") or {})

    def open(self, path: Path, text: str | None = None) -> str:
        from lsprotocol import types

        uri = path.as_uri()
        self.version[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text if text is not None else path.read_text()
                )
            )
        )
        return uri

    async def built(self, uri: str, timeout: float = 30) -> dict[str, Any]:
        """The context status once `uri`'s block is built (without context: at once)."""
        deadline = time.perf_counter() + timeout
        while True:
            state = await self.state()
            context = state.get("context") or {}
            if not context.get("enabled") or (context.get("active") == uri and context.get("active_built")):
                return dict(context)
            if time.perf_counter() > deadline:
                return dict(context)
            await asyncio.sleep(0.05)

    def edit(self, uri: str, line: int, start: int, end: int, text: str) -> None:
        from lsprotocol import types

        self.version[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.version[uri]),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(line, start), types.Position(line, end)), text=text
                    )
                ],
            )
        )

    async def complete(self, uri: str, line: int, column: int) -> tuple[str, float]:
        from lsprotocol import types

        started = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line, column),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
            )
        )
        latency = (time.perf_counter() - started) * 1000
        if not (result and result.items):
            return "", latency
        item = result.items[0]
        insert = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
        start = item.range.start.character if item.range else column
        return insert[column - start :], latency

    def cursor_moved(self, uri: str, line: int, column: int) -> None:
        """What the editors send when the cursor rests at a new place (tinyarms/cursorMoved)."""
        self.client.protocol.notify(
            "tinyarms/cursorMoved", {"textDocument": {"uri": uri}, "position": {"line": line, "character": column}}
        )

    async def type_line(
        self, uri: str, lines: list[str], number: int, pause_s: float = 0.0, *, arrive_s: float | None = None
    ) -> list[dict[str, Any]]:
        """Clear line `number` and type it back, one request per character. `arrive_s`: the
        user moved here (the editor's cursorMoved) and pauses that long before typing."""
        original = lines[number]
        indent = original[: len(original) - len(original.lstrip())]
        body = original[len(indent) :]
        self.edit(uri, number, len(indent), len(original), "")
        if arrive_s is not None:
            self.cursor_moved(uri, number, len(indent))
            await asyncio.sleep(arrive_s)
        records = []
        for typed in range(len(body)):
            if typed:
                self.edit(uri, number, len(indent) + typed - 1, len(indent) + typed - 1, body[typed - 1])
            suggestion, latency = await self.complete(uri, number, len(indent) + typed)
            truth = body[typed:]
            records.append(
                {
                    "ms": latency,
                    "typed": typed,
                    "empty": not suggestion,
                    "match": bool(suggestion) and truth.startswith(suggestion.split("\n")[0][:MATCH_CHARS]),
                }
            )
            if pause_s:
                await asyncio.sleep(pause_s)
        self.edit(uri, number, len(indent) + len(body) - 1, len(indent) + len(body) - 1, body[-1])
        return records


FIRST_KEYSTROKES = 5  # a line's first keystrokes: where a new place's prompt is evaluated cold


def replay_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [r for r in records if not r["empty"]]
    first = [r for r in records if r["typed"] < FIRST_KEYSTROKES]
    return {
        "requests": len(records),
        f"empty_share_first_{FIRST_KEYSTROKES}_keystrokes_of_a_line": round(
            sum(r["empty"] for r in first) / max(1, len(first)), 3
        ),
        f"empty_share_after_{FIRST_KEYSTROKES}": round(
            sum(r["empty"] for r in records if r["typed"] >= FIRST_KEYSTROKES) / max(1, len(records) - len(first)),
            3,
        ),
        "latency_ms": summary([r["ms"] for r in records]),
        "empty_share": round(1 - len(answered) / max(1, len(records)), 3),
        "match_share_of_all": round(sum(r["match"] for r in records) / max(1, len(records)), 3),
        "match_share_of_answers": round(sum(r["match"] for r in answered) / max(1, len(answered)), 3),
    }


async def context_replay(
    spec: str,
    targets: list[tuple[Path, list[Path]]],
    spots: int,
    per_spot: int,
    read_s: float,
    pauses: list[float],
    contexts: tuple[bool, ...] = (False, True),
) -> dict[str, Any]:
    """7: the same keystrokes with and without context, and with prefill at a new place
    (prefill_on_cursor) on and off: one server each, on and off side by side. After a file is opened the user reads
    for `read_s` (the didOpen prefill's time), then, for each pause in `pauses`, moves to
    `spots` new places (the editor sends tinyarms/cursorMoved), waits that pause and types
    `per_spot` consecutive lines there with no pause between keystrokes. Each pause has its
    own places (a place typed twice would answer from the cache); the conditions share them."""
    out: dict[str, Any] = {
        "files": [t.parent.name + "/" + t.name for t, _ in targets],
        "reading_pause_s": read_s,
        "pauses_s": pauses,
        "places_per_pause": spots * len(targets),
        "lines_per_place": per_spot,
    }
    for context in contexts:
        pair = await _replay_pair(spec, ReplayPlan(targets, spots, per_spot, read_s, pauses), context)
        for name, summary in pair.items():
            condition = f"{'with' if context else 'without'}_context_{name}"
            out[condition] = summary
            print(f"{condition}: {json.dumps(summary)}", file=sys.stderr, flush=True)
    return out


@dataclasses.dataclass(frozen=True)
class ReplayPlan:
    targets: list[tuple[Path, list[Path]]]
    spots: int
    per_spot: int
    read_s: float
    pauses: list[float]


class _Tally:
    """One server's records and engine counts, by pause."""

    def __init__(self, pauses: list[float]) -> None:
        self.by_pause: dict[float, list[dict[str, Any]]] = {pause: [] for pause in pauses}
        self.counts: dict[float, Counter[str]] = {pause: Counter() for pause in pauses}
        self.blocks: list[dict[str, Any]] = []

    def summary(self, state: dict[str, Any]) -> dict[str, Any]:
        def kind(pause: float, prefix: str) -> dict[str, int]:
            return {k: v for k, v in sorted(self.counts[pause].items()) if k.startswith(prefix)}

        return {
            **replay_summary([r for records in self.by_pause.values() for r in records]),
            "context_tokens": self.blocks,  # the block of each file: estimated, and by the model's tokenizer
            "by_pause": {
                str(pause): {
                    **replay_summary(records),
                    # Why a keystroke got nothing (engine counts): no token before the deadline,
                    # the model ended the line there, or post-processing removed what it wrote.
                    "empty_reasons": kind(pause, "empty_"),
                    "answer_sources": kind(pause, "answer_"),
                    "prefills": kind(pause, "prefill_"),
                }
                for pause, records in self.by_pause.items()
            },
            "cursor": (state.get("prefill") or {}).get("cursor", {}),
            "context_rebuilds": (state.get("context") or {}).get("rebuilds", {}),
        }


async def _replay_pair(spec: str, plan: ReplayPlan, context: bool) -> dict[str, dict[str, Any]]:
    """prefill_on_cursor off and on, two servers at once, each place typed in one and then
    the other (the order alternating): load that comes and goes on a shared machine falls
    on both alike, where one server after the other measured two different machines."""
    targets, spots, per_spot, read_s, pauses = plan.targets, plan.spots, plan.per_spot, plan.read_s, plan.pauses
    names = ("cursor_prefill_off", "cursor_prefill_on")
    tallies = {name: _Tally(pauses) for name in names}
    async with contextlib.AsyncExitStack() as stack:
        sessions = {
            name: await stack.enter_async_context(Session(spec, {"context": context, "prefill_on_cursor": on}))
            for name, on in zip(names, (False, True), strict=True)
        }
        for target, others in targets:
            lines = target.read_text(encoding="utf-8").split("\n")
            uris = {}
            # One server after the other: each has its reading pause to itself, as one editor
            # would. Opened at once, both children evaluated their didOpen prompt on the same
            # 2 cores (~50 tokens/s each, against ~280 alone) and neither was ready in time.
            for name, session in sessions.items():
                for other in others:
                    session.open(other)
                uris[name] = session.open(target)
                built = await session.built(uris[name])
                tallies[name].blocks.append(
                    {"estimate": built.get("active_tokens_estimate", 0), "real": built.get("active_tokens")}
                )
                await asyncio.sleep(read_s)
            places = pick_spots(lines, spots * len(pauses), per_spot)
            turn = 0
            for index, pause in enumerate(pauses):
                for place in places[index :: len(pauses)]:
                    order = names if turn % 2 == 0 else names[::-1]
                    turn += 1
                    for name in order:
                        session, tally = sessions[name], tallies[name]
                        before = Counter((await session.state()).get("counts", {}))
                        for position, number in enumerate(place):
                            # The first line of a place: the user moved there; the next ones follow on.
                            arrive = pause if position == 0 else None
                            tally.by_pause[pause] += await session.type_line(uris[name], lines, number, arrive_s=arrive)
                        tally.counts[pause] += Counter((await session.state()).get("counts", {})) - before
        return {name: tallies[name].summary(await sessions[name].state()) for name in names}


async def first_completion(spec: str, targets: list[tuple[Path, list[Path]]], pause_s: float) -> dict[str, Any]:
    """8: time from the first keystroke to the first non-empty answer, prefill on vs off
    (the file's imports opened first, the file opened, a reading pause, typing every 100 ms);
    then a new file is opened (its prefill starts) and a keystroke is sent at once in the
    first file: its latency, while that prefill runs."""
    out: dict[str, Any] = {"reading_pause_s": pause_s, "typing_interval_ms": 100}
    scratch = Path(tempfile.mkdtemp(prefix="tinyarms-bench-open-"))
    for condition, prefill in (("prefill_off", False), ("prefill_on", True)):
        firsts, during, during_empty = [], [], 0
        async with Session(spec, {"prefill": prefill}) as session:
            for index, (target, others) in enumerate(targets):
                for other in others:
                    session.open(other)
                lines = target.read_text(encoding="utf-8").split("\n")
                number = pick_lines(lines, 1, 1)[0]
                uri = session.open(target, "\n".join(lines))
                await session.built(uri)
                await asyncio.sleep(pause_s)
                original = lines[number]
                indent = len(original) - len(original.lstrip())
                session.edit(uri, number, indent, len(original), "")
                started = time.perf_counter()
                typed = 0
                while True:
                    suggestion, _ = await session.complete(uri, number, indent + typed)
                    if suggestion or time.perf_counter() - started > 60:
                        break
                    await asyncio.sleep(0.1)
                    if typed < len(original) - indent - 1:
                        session.edit(uri, number, indent + typed, indent + typed, original[indent + typed])
                        typed += 1
                firsts.append((time.perf_counter() - started) * 1000)
                # Another file opens (a new block, a prefill starts); a keystroke in this one.
                new = session.open(scratch / f"{condition}_{index}_{target.name}", target.read_text(encoding="utf-8"))
                await session.built(new)
                # At the end of the line above: no cached answer there, the model is needed.
                suggestion, latency = await session.complete(uri, number - 1, len(lines[number - 1]))
                during.append(latency)
                during_empty += not suggestion
            counts = (await session.state()).get("counts", {})
        out[condition] = {
            "first_answer_ms": summary(firsts),
            "keystroke_while_another_file_prefills_ms": summary(during),
            "keystroke_while_another_file_prefills_empty": during_empty,
            "prefills": {k: v for k, v in counts.items() if k.startswith("prefill")},
        }
    return out


async def many_open_files(spec: str, count: int, target: tuple[Path, list[Path]]) -> dict[str, Any]:
    """9: `count` open files, then one line typed in a package file."""
    files = [p for p in sorted(STDLIB.rglob("*.py")) if "test" not in p.parts and 2_000 <= p.stat().st_size <= 40_000]
    stride = max(1, len(files) // count)
    chosen = files[::stride][:count]
    async with Session(spec, {}) as session:
        started = time.perf_counter()
        for path in chosen:
            session.open(path, path.read_text(encoding="utf-8", errors="replace"))
        path, others = target
        for other in others:
            session.open(other)
        lines = path.read_text(encoding="utf-8").split("\n")
        uri = session.open(path)
        context = await session.built(uri, timeout=120)
        open_s = time.perf_counter() - started
        records = []
        for number in pick_lines(lines, 1, 2):
            records += await session.type_line(uri, lines, number)
        state = await session.state()
    return {
        "open_files": len(chosen) + len(others) + 1,
        "open_and_build_s": round(open_s, 2),
        "ring_chunks": context.get("chunks"),
        "context_tokens_estimate": context.get("active_tokens_estimate"),
        "context_tokens": context.get("active_tokens"),
        "context_cap_tokens": context.get("max_tokens"),
        "last_prompt_tokens": (state.get("last_generation") or {}).get("prompt_tokens"),
        "typing": replay_summary(records),
    }


CONTEXT_SECTIONS = ("quality", "replay", "first", "many")
PAUSES_S = (0.0, 0.5, 1.0, 2.0)  # the replay's pauses at a new place before the first keystroke


async def context_checks(
    spec: str,
    quick: bool,
    sections: tuple[str, ...] = CONTEXT_SECTIONS,
    *,
    seed: int = 15,
    conditions: tuple[str, ...] = CROSS_CONDITIONS,
    context_tokens: int = 512,
    threads: int = 2,
    pauses_s: tuple[float, ...] = PAUSES_S,
    replay_context: str = "both",
    holes_per_package: int = 8,
) -> dict[str, Any]:
    """5-9; each section's result is also printed to stderr as soon as it is done."""
    cross_n, single_n, targets_n, spots, pause_s = (2, 4, 1, 1, 6.0) if quick else (holes_per_package, 40, 2, 2, 15.0)
    pauses = list(pauses_s)
    targets = package_files()
    stride = max(1, len(targets) // targets_n)
    chosen = targets[stride // 2 :: stride][:targets_n]
    result: dict[str, Any] = {}
    started = time.perf_counter()

    def progress(section: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {section}", file=sys.stderr, flush=True)
        if result:
            print(json.dumps(result), file=sys.stderr, flush=True)

    if "quality" in sections:
        progress("quality (cross-file, single-file)")
        result.update(await quality_runs(spec, cross_n, single_n, seed, context_tokens, conditions, threads))
    if "replay" in sections:
        progress("typing replay with / without context")
        contexts = {"both": (False, True), "with": (True,), "without": (False,)}[replay_context]
        result["typing_replay_package"] = await context_replay(spec, chosen, spots, 2, pause_s / 2, pauses, contexts)
    if "first" in sections:
        progress("first completion after didOpen, prefill on / off")
        result["first_completion_after_open"] = await first_completion(spec, chosen, pause_s)
    if "many" in sections:
        progress("200 open files")
        result["open_files_200"] = await many_open_files(spec, 200, chosen[0])
    progress("done")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller sample (a couple of minutes)")
    parser.add_argument("--model", default="embedded:gemma3-270m")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="pause between keystrokes (default none)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--only", choices=["context"], help="only the project-context sections (5-9)")
    parser.add_argument(
        "--sections", default=",".join(CONTEXT_SECTIONS), help=f"with --only context: some of {CONTEXT_SECTIONS}"
    )
    parser.add_argument("--seed", type=int, default=15, help="with --only context: the cross-file holes' seed")
    parser.add_argument(
        "--holes-per-package",
        type=int,
        default=8,
        help="with --only context: cross-file holes drawn from each package (9 packages)",
    )
    parser.add_argument(
        "--cross-conditions",
        default=",".join(CROSS_CONDITIONS),
        help="with --only context: also with_context_no_header (an ablation)",
    )
    parser.add_argument("--context-tokens", type=int, default=512, help="with --only context: the block's cap")
    parser.add_argument("--threads", type=int, default=2, help="with --only context: model threads for quality")
    parser.add_argument("--replay-context", choices=["both", "with", "without"], default="both")
    parser.add_argument(
        "--pauses",
        default=",".join(str(p) for p in PAUSES_S),
        help="with --only context: the replay's pauses (s) at a new place before typing",
    )
    args = parser.parse_args()
    if args.only == "context":
        started = time.perf_counter()
        result = {
            "model": args.model,
            "quick": args.quick,
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            **asyncio.run(
                context_checks(
                    args.model,
                    args.quick,
                    tuple(args.sections.split(",")),
                    seed=args.seed,
                    conditions=tuple(args.cross_conditions.split(",")),
                    context_tokens=args.context_tokens,
                    threads=args.threads,
                    pauses_s=tuple(float(p) for p in args.pauses.split(",")),
                    replay_context=args.replay_context,
                    holes_per_package=args.holes_per_package,
                )
            ),
        }
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["total_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps(result, indent=2))
        return
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
