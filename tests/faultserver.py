"""A loopback HTTP/1.1 server speaking the OpenAI Chat Completions and Anthropic Messages
wire formats (SSE over chunked encoding, keep-alive), with faults scripted by model name.

The model name is `FAULT` or `FAULT/N`: the first N requests for that model get the fault
(every request when N is absent), later ones a normal answer. Faults:

  ok          a normal streamed answer "Answer from MODEL." (with logprobs -0.05 when asked)
  429         HTTP 429 with Retry-After: 1
  429now      HTTP 429 with Retry-After: 0
  503         HTTP 503 with Retry-After: 1 (a server shedding load)
  500         HTTP 500
  slow        nothing at all for 60 s (a first byte past any deadline)
  cut         two deltas, then the connection closes mid-stream
  badjson     an SSE event whose data is not JSON
  schema      well-formed JSON of the wrong shape (no choices / no delta)
  empty       a complete stream with no text
  lowconf     a normal answer with logprobs of -4 per token
  selfno      a normal answer; a self-check request gets "no"

Scripted turns (tool calls a small model will not make on demand): `server.script(MODEL, turns)`
queues answers for requests naming MODEL, served in order in the wire format asked for. A turn
is `{"text": "..."}` or `{"tool_calls": [{"name", "arguments"}]}` (arguments an object, or a
string sent as is, malformed JSON included), optionally with `"delay": seconds` before the
first byte. When the queue runs out the answer is the text "script ended". `tools` in the
log says which tool names the request offered.

Replicas of one model (`base_urls`) all see the same model name, so a server can be given its
own fault instead: `server.fault = "429/2"` applies to every request whatever the model names
(same FAULT/N form, counted per server), and `server.retry_after` sets the header 429 and 503
send. `FaultServer(port=P)` listens on a chosen port (a replica that comes back where it was).

`GET /log` returns what was asked, in order: [{"path", "model", "fault", "auth", "messages", "at"}]
where `auth` says only whether a credential header came (never its value) and `at` is the
server's `time.monotonic()` when the request arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from typing import Any

WORDS = ["Answer ", "from ", "{model}", "."]


def closed_port() -> int:
    """A loopback port nothing listens on (a server that is down: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FaultServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.fault: str | None = None  # every request's fault, whatever the model (replicas)
        self.retry_after = "1"  # the Retry-After that 429 and 503 send
        self.log: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.connections = 0  # TCP connections accepted: keep-alive reuse shows here
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        """Close the listener and every open connection's handler, so nothing outlives the loop."""
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reset(self) -> None:
        self.log.clear()
        self.counts.clear()
        self.scripts.clear()
        self.connections = 0
        self.fault = None
        self.retry_after = "1"

    def script(self, model: str, turns: list[dict[str, Any]]) -> None:
        self.scripts[model] = list(turns)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    # -- HTTP ----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                keep = await self._respond(method, path, headers, body, reader, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def _respond(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if method == "GET" and path == "/log":
            await _send(writer, 200, "application/json", json.dumps(self.log).encode())
            return True
        try:
            request = json.loads(body)
            model = str(request["model"])
        except (ValueError, KeyError, TypeError):
            await _send(writer, 400, "application/json", b'{"error": "bad request"}')
            return True
        scripted = self.fault or model
        fault, _, limit = scripted.partition("/")
        seen = self.counts.get(scripted, 0)
        self.counts[scripted] = seen + 1
        if limit and seen >= int(limit):
            fault = "ok"
        anthropic = path.endswith("/messages")
        auth = bool(headers.get("authorization") or headers.get("x-api-key"))
        messages = request.get("messages") or []
        entry = {"path": path, "model": model, "fault": fault, "auth": auth, "messages": messages}
        entry["at"] = time.monotonic()
        if anthropic:
            entry["cache_control"] = sum("cache_control" in block for block in request.get("system") or [])
        entry["tools"] = [t.get("name") or (t.get("function") or {}).get("name") for t in request.get("tools") or []]
        self.log.append(entry)
        if model in self.scripts and not (self.fault and fault != "ok"):
            queue = self.scripts[model]
            turn = queue.pop(0) if queue else {"text": "script ended"}
            if turn.get("delay"):
                try:
                    await asyncio.wait_for(reader.read(), turn["delay"])  # the client closing ends the wait
                    return False
                except TimeoutError:
                    pass
            events = _scripted_events(turn, anthropic, sum(len(str(m).split()) for m in request.get("messages") or []))
            await _stream(writer, events)
            return True
        is_check = any("yes or no" in str(m.get("content", "")) for m in messages)

        if fault in ("429", "429now"):
            after = self.retry_after if fault == "429" else "0"
            await _send(writer, 429, "application/json", b'{"error": "rate limited"}', {"retry-after": after})
            return True
        if fault == "503":
            await _send(writer, 503, "application/json", b'{"error": "overloaded"}', {"retry-after": self.retry_after})
            return True
        if fault == "500":
            await _send(writer, 500, "application/json", b'{"error": "boom"}')
            return True
        if fault == "slow":
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(), 60)  # until the client gives up and closes
            return False

        words = [w.format(model=model) for w in WORDS]
        if fault == "selfno" and is_check:
            words = ["no"]
        elif is_check:
            words = ["yes"]
        if fault == "empty":
            words = []
        logprob = -4.0 if fault == "lowconf" else -0.05
        want_logprobs = bool(request.get("logprobs"))
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        events = (
            _anthropic_events(words, prompt_tokens, fault)
            if anthropic
            else _openai_events(model, words, prompt_tokens, fault, logprob if want_logprobs else None)
        )
        return await _stream(writer, events, cut_at=3 if fault == "cut" else None)


async def _stream(writer: asyncio.StreamWriter, events: list[str], cut_at: int | None = None) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
        b"cache-control: no-cache\r\n\r\n"
    )
    for index, event in enumerate(events):
        if index == cut_at:
            writer.transport.abort()  # mid-stream, no terminating chunk
            return False
        await _chunk(writer, event.encode())
        await asyncio.sleep(0)
    await _chunk(writer, b"")
    return True


def _scripted_events(turn: dict[str, Any], anthropic: bool, prompt: int) -> list[str]:
    """One scripted turn in either wire format; tool-call arguments arrive in two pieces, as real
    servers stream them."""
    text = str(turn.get("text") or "")
    calls = [
        (f"call_{i}", c["name"], c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"]))
        for i, c in enumerate(turn.get("tool_calls") or [])
    ]
    completion = len(text.split()) + sum(len(a) // 4 for _, _, a in calls)
    if anthropic:
        events = [_sse({"type": "message_start", "message": {"usage": {"input_tokens": prompt, "output_tokens": 1}}})]
        index = 0
        if text:
            events += [
                _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                _sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
                _sse({"type": "content_block_stop", "index": 0}),
            ]
            index = 1
        for offset, (call_id, name, arguments) in enumerate(calls):
            at = index + offset
            block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            events.append(_sse({"type": "content_block_start", "index": at, "content_block": block}))
            for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append(_sse({"type": "content_block_delta", "index": at, "delta": delta}))
            events.append(_sse({"type": "content_block_stop", "index": at}))
        stop = "tool_use" if calls else "end_turn"
        usage = {"output_tokens": completion}
        events.append(_sse({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": usage}))
        events.append(_sse({"type": "message_stop"}))
        return events
    events = [_sse({"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})]
    if text:
        events.append(_sse({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}))
    for i, (call_id, name, arguments) in enumerate(calls):
        head = {"index": i, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        events.append(_sse({"choices": [{"index": 0, "delta": {"tool_calls": [head]}, "finish_reason": None}]}))
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
            events.append(_sse({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
    events.append(_sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}]}))
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    events.append(_sse({"choices": [], "usage": usage}))
    events.append(_sse("[DONE]"))
    return events


async def _send(
    writer: asyncio.StreamWriter, status: int, kind: str, body: bytes, extra: dict[str, str] | None = None
) -> None:
    head = f"HTTP/1.1 {status} X\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


def _sse(data: Any, event: str | None = None) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def _openai_events(model: str, words: list[str], prompt: int, fault: str, logprob: float | None) -> list[str]:
    if fault == "badjson":
        return [_sse({"choices": [{"delta": {"content": "Answer "}}]}), _sse("{not json"), _sse("[DONE]")]
    if fault == "schema":
        return [_sse({"id": "x", "object": "chat.completion.chunk", "result": "Answer"}), _sse("[DONE]")]
    events = [_sse({"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})]
    for word in words:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": word}, "finish_reason": None}
        if logprob is not None:
            choice["logprobs"] = {"content": [{"token": word, "logprob": logprob}]}
        events.append(_sse({"model": model, "choices": [choice]}))
    events.append(_sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    usage = {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}
    events.append(_sse({"choices": [], "usage": usage}))
    events.append(_sse("[DONE]"))
    return events


def _anthropic_events(words: list[str], prompt: int, fault: str) -> list[str]:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": prompt, "output_tokens": 1}}}
    if fault == "badjson":
        return [_sse(start, "message_start"), _sse("{not json", "content_block_delta")]
    if fault == "schema":
        return [_sse(start, "message_start"), _sse({"type": "content_block_delta", "delta": "oops"}, "x")]
    events = [
        _sse(start, "message_start"),
        _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    for word in words:
        events.append(_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}))
    events.append(_sse({"type": "content_block_stop", "index": 0}))
    events.append(
        _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": len(words)}})
    )
    events.append(_sse({"type": "message_stop"}))
    return events


def main() -> None:
    """`python tests/faultserver.py`: serve on a free port (printed as the first line) until killed."""
    import time

    with FaultServer() as server:
        print(server.port, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
