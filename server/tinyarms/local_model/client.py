"""The parent side of one model child process (asyncio).

Why a child process: llama.cpp is native code and does segfault (bad GGUF files, AMX
kernels, out-of-memory in the KV cache). In-process, that kills the language server and
the editor loses every feature. In a child, the server logs the crash, fails the requests
in flight with `LocalModelError` at once and starts a new child with backoff. The price is
one JSON line each way per message: `scripts/bench_autocomplete.py` measures the no-op
round trip (`ipc_roundtrip_ms`: 0.05 ms p50, 0.13 ms p95 on this 2-core machine), more
than two orders of magnitude below one generated token (20-50 ms), and each keystroke
costs one request plus one reply line per generated token, so the isolation is nearly
free. The alternative, llama.cpp in the server process, is 0.05 ms faster per request
and loses the whole language server on the first segfault.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # a child that lived this long resets the backoff
# The watchdog pings a ready child this often; one that does not answer in 3 intervals is
# hung (SIGSTOP, a deadlock in native code) and is killed, then restarts like a crash. The
# child answers pings on its reader thread, even mid-generation (0.05 ms), so 15 s of
# silence is never a slow answer. TINYARMS_WATCHDOG_S changes the interval (tests).
WATCHDOG_S = 5.0


class LocalModelError(Exception):
    """The model process failed, crashed, or is not available."""


@attrs.frozen
class ChatPiece:
    text: str
    logprob: float | None
    done: bool = False
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens), on the last piece


@attrs.frozen
class CompletionResult:
    text: str
    stop_reason: str
    stats: dict[str, Any]


class LocalModel:
    """One llama.cpp model in its own process. Safe to share between features: the child
    answers requests in order; cancelling a consumer cancels its request in the child."""

    def __init__(self, spec: str, *, purpose: str, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        self.spec = spec
        self.purpose = purpose
        self.n_ctx = n_ctx or 2048
        # llama.cpp threads spin-wait on each other: on a busy 2-core machine 2 threads ran
        # 2-7x slower than 1 (bench: 360 vs 52 ms/token at load 7). Autocomplete, which
        # must stay fast while the editor and builds run, defaults to 1; others to 2.
        self.n_threads = min(n_threads or (1 if purpose == "autocomplete" else 2), 2)
        self.state = "idle"  # idle | loading | ready | restarting | failed | stopped
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self.path: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._start_lock: asyncio.Lock | None = None
        self._ready: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._backoff = 0.5
        self._started_at = 0.0
        self._stopping = False
        self.crashes = 0
        self._hung: str | None = None  # why the watchdog killed the child, until it restarts
        self.last_failure: str | None = None  # the latest crash or hang, for status
        self.listeners: list[Callable[[LocalModel], None]] = []  # told about every state change

    def _set_state(self, state: str, error: str | None = None) -> None:
        self.state, self.error = state, error
        for listener in self.listeners:
            try:
                listener(self)
            except Exception:
                log.exception("model state listener failed")

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model in the child; idempotent. Raises LocalModelError on failure."""
        if self._start_lock is None:
            self.loop = asyncio.get_running_loop()
            self._start_lock = asyncio.Lock()
            self._ready = asyncio.Event()
        async with self._start_lock:
            if self.ready and self._proc and self._proc.returncode is None:
                return
            self._stopping = False
            await self._spawn()

    async def _spawn(self) -> None:
        from tinyarms.models.sources import ModelNotAvailable, resolve

        self._set_state("loading")
        try:
            if self.path is None:
                self.path = os.path.abspath(await asyncio.to_thread(resolve, self.spec))  # the child runs elsewhere
        except ModelNotAvailable as exc:
            self._set_state("failed", str(exc))
            raise LocalModelError(str(exc)) from exc
        if self._proc and self._proc.returncode is None:
            self._proc.kill()  # a child that failed to load
        command, cwd, env = child_command()
        self._proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            limit=1 << 24,
        )
        self._started_at = time.monotonic()
        proc = self._proc
        self._spawn_task(self._read_replies(proc))
        self._spawn_task(self._read_logs(proc))
        log.info("model %s (%s): loading %s in child pid %d", self.spec, self.purpose, self.path, proc.pid)
        started = time.perf_counter()
        try:
            self.info = await self._call("load", path=self.path, n_ctx=self.n_ctx, n_threads=self.n_threads)
        except LocalModelError as exc:
            self._set_state("failed", str(exc))
            raise
        self._set_state("ready")
        assert self._ready is not None
        self._ready.set()
        self._spawn_task(self._watch(proc))
        log.info("model %s (%s) ready in %.2fs", self.spec, self.purpose, time.perf_counter() - started)

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        self._stopping = True
        self._set_state("stopped")
        proc = self._proc
        if proc and proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), timeout=3)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._fail_pending("the model is shut down")

    def kill_now(self) -> None:
        """Synchronous last resort at interpreter exit."""
        self._stopping = True
        if self._proc and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    # -- the child's output ------------------------------------------------------------

    async def _read_replies(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                line = await proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                log.error("model %s: reply line too long; dropped", self.spec)
                continue
            if not line:
                break
            try:
                message = json.loads(line)
            except ValueError:
                log.error("model %s: bad reply line %r", self.spec, line[:200])
                continue
            queue = self._pending.get(message.get("id"))
            if queue is not None:
                queue.put_nowait(message)
        code = await proc.wait()
        if proc is not self._proc:
            return
        self._fail_pending(f"the model process exited ({_describe(code)})")
        if self._stopping:
            return
        self.crashes += 1
        why, self._hung = self._hung or f"crashed: {_describe(code)}", None
        self.last_failure = why
        self._set_state("restarting", why)
        if time.monotonic() - self._started_at > STABLE_AFTER_S:
            self._backoff = 0.5
        delay, self._backoff = self._backoff, min(self._backoff * 2, MAX_BACKOFF_S)
        log.error(
            "model %s (%s): child pid %d died (%s); requests in flight failed; restarting in %.1fs",
            self.spec,
            self.purpose,
            proc.pid,
            _describe(code),
            delay,
        )
        self._spawn_task(self._restart(delay))

    async def _restart(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping:
            return
        try:
            assert self._start_lock is not None
            async with self._start_lock:
                if self.ready or self._stopping:
                    return  # someone called start() meanwhile
                await self._spawn()
        except Exception as exc:
            log.error("model %s: restart failed: %s", self.spec, exc)
            if not self._stopping and self.state != "failed":
                self._spawn_task(self._restart(self._backoff))

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """Kill `proc` when it stops answering pings; `_read_replies` then restarts it."""
        interval = float(os.environ.get("TINYARMS_WATCHDOG_S") or WATCHDOG_S)
        while proc is self._proc and proc.returncode is None and not self._stopping:
            await asyncio.sleep(interval)
            if proc is not self._proc or not self.ready:
                continue
            try:
                await asyncio.wait_for(self._call("ping"), timeout=3 * interval)
            except TimeoutError:
                self._hung = f"hung: no answer to a ping in {3 * interval:g} s; killed"
                log.error("model %s (%s): child pid %d %s", self.spec, self.purpose, proc.pid, self._hung)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return
            except LocalModelError:
                return  # it exited: _read_replies handles that

    async def _read_logs(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                log.info("model %s[%d]: %s", self.purpose, proc.pid, line)

    def _fail_pending(self, reason: str) -> None:
        for queue in self._pending.values():
            queue.put_nowait({"done": True, "error": reason, "fatal": True})

    # -- requests ----------------------------------------------------------------------

    async def stream(self, op: str, **payload: Any) -> AsyncIterator[dict[str, Any]]:
        """Send one request; yield its messages until the last (`done`). Leaving early or
        being cancelled cancels the request in the child."""
        proc = self._proc
        if proc is None or proc.returncode is not None or (op != "load" and not self.ready):
            raise LocalModelError(f"model {self.spec} is not ready ({self.state})")
        rid = next(self._ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pending[rid] = queue
        finished = False
        try:
            self._write(proc, {"id": rid, "op": op, **payload})
            while True:
                message = await queue.get()
                if message.get("done"):
                    finished = True
                    if "error" in message:
                        raise LocalModelError(f"model {self.spec}: {message['error']}")
                    yield message
                    return
                yield message
        finally:
            self._pending.pop(rid, None)
            if not finished and proc.returncode is None:
                with contextlib.suppress(Exception):
                    self._write(proc, {"op": "cancel", "target": rid})

    def _write(self, proc: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as exc:
            raise LocalModelError(f"model {self.spec}: the process is gone ({exc})") from exc

    async def _call(self, op: str, **payload: Any) -> dict[str, Any]:
        last: dict[str, Any] = {}
        async for message in self.stream(op, **payload):
            last = message
        return last

    async def ping(self) -> float:
        """One no-op round trip through the pipe, in seconds."""
        started = time.perf_counter()
        await self._call("ping")
        return time.perf_counter() - started

    async def metadata(self, probe: list[str]) -> dict[str, Any]:
        return await self._call("metadata", probe=probe)

    async def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        reply = await self._call("tokenize", text=text, special=special)
        return list(reply["tokens"])

    async def score(self, prompt: str, candidates: list[str]) -> list[float]:
        """The logit of each candidate's first token after `prompt` (one forward pass)."""
        reply = await self._call("score", prompt=prompt, candidates=candidates)
        return [float(x) for x in reply["logits"]]

    async def crash(self) -> None:
        """Test only (TINYARMS_ALLOW_CRASH=1): make the child segfault."""
        await self._call("crash")

    async def complete(
        self,
        segments: list[tuple[str, str]],
        *,
        max_tokens: int,
        stop: list[str] | None = None,
        stop_at_newline: bool = True,
    ) -> AsyncIterator[str | CompletionResult]:
        """Greedy prefix completion: yields text pieces as they are generated, then a
        CompletionResult. The KV cache keeps the longest common token prefix."""
        async for message in self.stream(
            "complete",
            segments=[list(s) for s in segments],
            max_tokens=max_tokens,
            stop=stop or [],
            stop_at_newline=stop_at_newline,
        ):
            if message.get("done"):
                stats = {k: v for k, v in message.items() if k not in ("id", "done", "text", "stop_reason")}
                reason = "cancelled" if message.get("cancelled") else str(message.get("stop_reason"))
                yield CompletionResult(str(message.get("text", "")), reason, stats)
            else:
                yield str(message["piece"])

    async def prefill(self, segments: list[tuple[str, str]], *, chunk: int = 8) -> dict[str, Any]:
        """Evaluate a prompt into the KV cache without generating (autocomplete's "ready
        before the first keystroke"). The child evaluates `chunk` tokens at a time and stops
        as soon as another request is waiting: {"evaluated", "prompt_tokens", "preempted"}."""
        return await self._call("prefill", segments=[list(s) for s in segments], chunk=chunk)

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        json_schema: str | None = None,
    ) -> AsyncIterator[ChatPiece]:
        """Stream a chat answer with the model's own chat template; the last piece has
        done=True and usage=(prompt_tokens, completion_tokens). With `json_schema` the answer
        is constrained to JSON of that schema (llama.cpp grammar)."""
        extra = {"json_schema": json_schema} if json_schema else {}
        async for message in self.stream(
            "chat", messages=messages, max_tokens=max_tokens, temperature=temperature, stop=stop or [], **extra
        ):
            if message.get("done"):
                usage = message.get("usage") or [0, 0]
                yield ChatPiece("", None, done=True, usage=(int(usage[0]), int(usage[1])))
            else:
                yield ChatPiece(str(message["piece"]), message.get("logprob"))


def child_command() -> tuple[list[str], str, dict[str, str]]:
    """How the child starts: (argv, cwd, env), so no file of the user's folder is imported.

    `python -m` puts the current folder first on sys.path, and the server's current folder
    is often a cloned repository: its `queue.py` would run in the child. `-P` (Python 3.11)
    leaves the current folder off sys.path and keeps PYTHONPATH. Relative and empty
    PYTHONPATH entries (both mean "the current folder") are dropped, and the child runs in
    the folder that holds the tinyarms package.
    """
    server_dir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    entries = [server_dir] + [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if os.path.isabs(e)]
    env["PYTHONPATH"] = os.pathsep.join(entries)
    return [sys.executable, "-P", "-m", "tinyarms.local_model.worker"], server_dir, env


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"
