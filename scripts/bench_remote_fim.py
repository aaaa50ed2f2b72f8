"""Benchmark: tinyarms against llama-server itself, the engine llama.vim / llama.vscode users
pick. One typing replay (bench_autocomplete.py's: standard-library files the project did not
write, chosen lines cleared and typed back one character at a time, a request per
character, no debounce), the same GGUF, in one run:

  a. tinyarms, local engine (the in-process model; the baseline the ratios are against);
  b. tinyarms, autocomplete on llama-server as a remote tier (`/infill`), the local model
     as its fallback (remote_wait_ms / max_latency_ms as configured: 60 / 100 by default);
  b2. the same over llama-server's `/v1/completions` with the prefix-only template, so the
     remote sees exactly the prompt (a) sends (Gemma 3 270M has no FIM tokens: see below);
  c. a llama.vim-style client calling `/infill` directly with llama.vim's defaults
     (autoload/llama.vim, `llama#fim`): 256 lines before / 64 after, `n_predict` 128,
     `t_max_prompt_ms` 500, `t_max_predict_ms` 250 for a first request, top_k 40 / top_p 0.9,
     samplers top_k, top_p, infill, `cache_prompt`, `n_indent`, ring-buffer chunks of the
     files left (64 lines, at most 16) as `input_extra`, its cache of answers and its
     typed-through lookup (up to 128 characters back); no streaming, as llama.vim. Not
     modelled: its speculative follow-up request after a hint is shown.

Per variant: p50/p95 latency (keystroke to answer), empty share, match share (the answer's
first 5 characters are what the file really continues with), over all requests and over
the answered ones; and ratios of p50/p95 against (a).

The embedded Gemma 3 270M has no FIM tokens; llama-server's /infill refuses such a model,
so it is started with three unused special tokens named as FIM tokens (`--override-kv`,
tests/model_server.py). The model never learned them: /infill quality here says little
about a FIM model's, while (a) vs (b2) compares the clients on identical prompts.

    flock /tmp/bench.lock nice -n 5 python scripts/bench_remote_fim.py [--quick] [--only a,b,c]

The machine is shared and noisy: read the ratios and the load average printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

from bench_autocomplete import MATCH_CHARS, pick_lines, stdlib_files, summary, typing_replay  # noqa: E402
from model_server import LlamaServer  # noqa: E402

# llama.vim's defaults (autoload/llama.vim, s:default_config and llama#fim).
VIM = {
    "n_prefix": 256,
    "n_suffix": 64,
    "n_predict": 128,
    "t_max_prompt_ms": 500,
    "t_max_predict_ms_first": 250,
    "ring_n_chunks": 16,
    "ring_chunk_size": 64,
    "max_cache_keys": 250,
}


def remote_env(kind: str, url: str) -> dict[str, str]:
    """Settings (env layer) that put autocomplete on tier `gpu`, the local tier its fallback."""
    if kind == "infill":
        tier = {"PROVIDER": "llama-server", "BASE_URL": url, "MODEL": "gemma"}
    else:
        tier = {"PROVIDER": "openai", "BASE_URL": url + "/v1", "MODEL": "gemma", "TEMPLATE": "prefix-only"}
    env = {f"TINYARMS_TIERS__GPU__{key}": json.dumps(value) for key, value in tier.items()}
    env["TINYARMS_ROLES__AUTOCOMPLETE__TIER"] = '"gpu"'
    env["TINYARMS_ROLES__AUTOCOMPLETE__ESCALATE_TO"] = '["local"]'
    return env


class VimClient:
    """What llama.vim does per keystroke, against /infill, without an editor."""

    def __init__(self, url: str) -> None:
        self.url = url + "/infill"
        self.cache: dict[tuple[str, str], str] = {}  # (prefix + middle, suffix) -> content
        self.chunks: list[dict[str, str]] = []  # the ring buffer: {text, filename}
        self.client = httpx.Client(timeout=60)
        self.errors = 0
        self.requests = 0

    def pick_chunk(self, lines: list[str], around: int, filename: str) -> None:
        """BufLeave: the lines around the cursor go into the ring buffer (oldest out first)."""
        half = VIM["ring_chunk_size"] // 2
        text = "\n".join(lines[max(0, around - half) : around + half]) + "\n"
        if any(c["text"] == text for c in self.chunks):
            return
        self.chunks.append({"text": text, "filename": filename})
        del self.chunks[: -VIM["ring_n_chunks"]]

    def local_context(self, lines: list[str], row: int, column: int) -> tuple[str, str, str, int]:
        current = lines[row]
        line_prefix, line_suffix = current[:column], current[column:]
        before = lines[max(0, row - VIM["n_prefix"]) : row]
        after = lines[row + 1 : row + 1 + VIM["n_suffix"]]
        if not current.strip():  # a blank line: from its start, indent 0 (as llama.vim)
            line_prefix, line_suffix, indent = "", "", 0
        else:
            indent = len(current) - len(current.lstrip())
        prefix = "\n".join(before) + "\n"
        suffix = line_suffix + "\n" + "\n".join(after) + "\n"
        return prefix, line_prefix, suffix, indent

    def hint(self, prefix: str, middle: str, suffix: str) -> str | None:
        """s:fim_try_hint: the answer cached here, or one cached up to 128 characters back
        whose start is what was typed since."""
        exact = self.cache.get((prefix + middle, suffix))
        if exact is not None:
            return exact
        text = prefix + middle
        best: str | None = None
        for back in range(1, min(128, len(text)) + 1):
            cached = self.cache.get((text[:-back], suffix))
            if cached and cached[:back] == text[-back:] and len(cached) > back:
                rest = cached[back:]
                best = rest if best is None or len(rest) > len(best) else best
        return best

    def complete(self, lines: list[str], row: int, column: int) -> tuple[str, str]:
        """(suggestion after the cursor, "cache" | "model")."""
        prefix, middle, suffix, indent = self.local_context(lines, row, column)
        found = self.hint(prefix, middle, suffix)
        source = "cache"
        if found is None:
            body = {
                "id_slot": 0,
                "input_prefix": prefix,
                "input_suffix": suffix,
                "input_extra": self.chunks,
                "prompt": middle,
                "n_predict": VIM["n_predict"],
                "stop": [],
                "n_indent": indent,
                "top_k": 40,
                "top_p": 0.90,
                "samplers": ["top_k", "top_p", "infill"],
                "stream": False,
                "cache_prompt": True,
                "t_max_prompt_ms": VIM["t_max_prompt_ms"],
                "t_max_predict_ms": VIM["t_max_predict_ms_first"],
                "response_fields": ["content", "timings/prompt_n", "timings/predicted_n", "tokens_cached"],
            }
            self.requests += 1
            response = self.client.post(self.url, json=body)
            if response.status_code != 200:  # counted, as llama.vim shows nothing then
                self.errors += 1
                return "", "error"
            found = str(response.json().get("content", ""))
            self.cache[(prefix + middle, suffix)] = found
            if len(self.cache) > VIM["max_cache_keys"]:
                self.cache.pop(next(iter(self.cache)))
            source = "model"
        if not middle and lines[row][:column].strip() == "":
            # A blank line is completed from its start: drop the indent already typed.
            typed = lines[row][:column]
            found = found[len(typed) :] if found.startswith(typed) else found.lstrip()
        return found, source


def vim_replay(url: str, files: list[Path], spots: int, per_spot: int, max_requests: int) -> dict[str, Any]:
    """The replay of bench_autocomplete.typing_replay, keystroke for keystroke, as llama.vim."""
    client = VimClient(url)
    records: list[dict[str, Any]] = []
    for path in files:
        lines = path.read_text(encoding="utf-8").split("\n")
        last = 0
        for number in pick_lines(lines, spots, per_spot):
            original = lines[number]
            indent = original[: len(original) - len(original.lstrip())]
            body = original[len(indent) :]
            for typed in range(len(body)):
                if client.requests >= max_requests:
                    break  # bounded: without a reused prompt cache one request takes seconds
                lines[number] = indent + body[:typed]
                column = len(indent) + typed
                started = time.perf_counter()
                suggestion, source = client.complete(lines, number, column)
                latency = (time.perf_counter() - started) * 1000
                first_line = suggestion.split("\n")[0]
                truth = body[typed:]
                records.append(
                    {
                        "ms": latency,
                        "empty": not first_line.strip(),
                        "match": bool(first_line.strip()) and truth.startswith(first_line[:MATCH_CHARS]),
                        "source": source,
                    }
                )
            lines[number] = original
            last = number
        client.pick_chunk(lines, last, path.name)  # BufLeave
    client.client.close()
    return {**replay_stats(records), "http_errors": client.errors, "infill_requests": client.requests}


def replay_stats(records: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [r for r in records if not r["empty"]]
    by_source: dict[str, list[float]] = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(r["ms"])
    return {
        "requests": len(records),
        "latency_ms": summary([r["ms"] for r in records]),
        "empty_share": round(1 - len(answered) / max(1, len(records)), 3),
        "match_share_of_all": round(sum(r["match"] for r in records) / max(1, len(records)), 3),
        "match_share_of_answers": round(sum(r["match"] for r in answered) / max(1, len(answered)), 3),
        "latency_ms_by_source": {k: summary(v) for k, v in sorted(by_source.items())},
    }


def tinyarms(model: str, files: list[Path], spots: int, per_spot: int, env: dict[str, str]) -> dict[str, Any]:
    result = asyncio.run(typing_replay(model, files, spots, per_spot, 0.0, env))
    records = result.pop("_records")
    # The same shape as the llama.vim variant's, plus what tinyarms reports about itself.
    stats = replay_stats(records)
    stats.update(model_load_s=result["model_load_s"], engine_counts=result["engine_counts"], remote=result["remote"])
    return stats


def ratios(variant: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("p50", "p95"):
        mine, base = variant["latency_ms"].get(key), baseline["latency_ms"].get(key)
        out[f"{key}_vs_a"] = round(mine / base, 2) if mine is not None and base else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller sample (about a minute per variant)")
    parser.add_argument("--model", default="embedded:gemma3-270m")
    parser.add_argument("--only", default="a,b,b2,c", help="variants to run, of a,b,b2,c")
    parser.add_argument("--max-vim-requests", type=int, default=60, help="cap on (c)'s /infill requests")
    parser.add_argument(
        "--server-args", default="", help='more llama-server flags, e.g. "--swa-full" (Gemma 3: reuse the prompt cache)'
    )
    args = parser.parse_args()
    variants = args.only.split(",")
    files, spots, per_spot = (2, 1, 2) if args.quick else (3, 2, 2)
    sample = stdlib_files(files)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "model": args.model,
        "quick": args.quick,
        "files": [p.name for p in sample],
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    # 8192 tokens: llama.vim's 256 + 64 lines and its chunks need more than 2048 (its README
    # starts llama-server with the model's whole context); tinyarms' prompts stay far below.
    log = Path(tempfile.mkdtemp(prefix="bench-llama-server-")) / "server.log"
    server = LlamaServer(log, args.model, *args.server_args.split(), n_ctx=8192)
    result["llama_server"] = {"binary": server.binary(), "command": " ".join(server.command()[1:])}
    runs: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    clock = time.perf_counter

    def timed(name: str, run: Any) -> None:
        begun = clock()
        runs[name] = run()
        seconds[name] = round(clock() - begun, 1)
        print(json.dumps({name: runs[name], "s": seconds[name]}), file=sys.stderr)  # kept if a later one fails

    if "a" in variants:
        timed("a_tinyarms_local", lambda: tinyarms(args.model, sample, spots, per_spot, {}))
    if {"b", "b2", "c"} & set(variants):
        server.start()
        try:
            if "b" in variants:
                env_b = remote_env("infill", server.url)
                timed("b_tinyarms_remote_infill", lambda: tinyarms(args.model, sample, spots, per_spot, env_b))
            if "b2" in variants:
                env_b2 = remote_env("completions", server.url)
                timed("b2_tinyarms_remote_completions", lambda: tinyarms(args.model, sample, spots, per_spot, env_b2))
            if "c" in variants:
                cap = args.max_vim_requests
                timed("c_llama_vim_style_infill", lambda: vim_replay(server.url, sample, spots, per_spot, cap))
        finally:
            server.stop()
    result["variants"] = runs
    result["variant_s"] = seconds
    if "a_tinyarms_local" in runs:
        result["ratios_vs_a"] = {name: ratios(run, runs["a_tinyarms_local"]) for name, run in runs.items()}
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
