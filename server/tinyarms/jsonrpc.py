"""The JSON-RPC edge: what pygls 2.1 leaves unanswered or lets kill the server, answered.

Measured against pygls 2.1.1 (see the issue-12 notes for the upstream reproduction):

- A request whose params do not fit the LSP type (`params: null`, a position given as a
  string, negative or 2^31) raises while the message is parsed, before pygls knows it is
  a request, so no reply is ever sent and the client waits forever. Here such a request
  gets a JSON-RPC "invalid params" error naming the field.
- The reader trusts `Content-Length`: 10^20 raises OverflowError out of the read loop (the
  server exits), 3*10^9 tries to allocate 3 GB. Here a message over `MAX_MESSAGE_BYTES`
  (64 MiB) gets an error, and the reader finds the next header and keeps serving. Header
  lines are read at most 64 KiB at a time, so a body without headers cannot fill memory.
- A body that is not JSON, or not a JSON-RPC object, is logged and dropped; here it gets
  a "parse error" / "invalid request" reply with id null, as JSON-RPC 2.0 asks.
- An exception in a handler goes to the client with its whole traceback; here the client
  gets one line and the traceback goes to the log.
- After `exit` closes stdout, every later write (a status notification, a log record)
  fails, and reporting that failure writes again: one server logged 187,000 lines. Here
  writes after the transport closed are dropped silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from typing import Any

import cattrs
from cattrs.v import format_exception
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_HEADER_LINE = 64 * 1024
_CONTENT_LENGTH = re.compile(rb"Content-Length:\s*(\S*)\s*$", re.IGNORECASE)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602


def one_line(text: str, limit: int = 1000) -> str:
    """An error message as the client sees it: one line, bounded."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _BadRequest:
    """A request whose params did not fit its type; answered with an error, never run."""

    def __init__(self, msg_id: Any, method: str, message: str) -> None:
        self.id, self.method, self.message = msg_id, method, message


def _field_errors(exc: BaseException) -> str:
    """cattrs' nested errors as `field: problem` pairs, e.g. `params.position.line: ...`."""
    cause = exc.__cause__ or exc
    if isinstance(cause, (cattrs.ClassValidationError, cattrs.IterableValidationError)):
        try:
            lines = cattrs.transform_error(cause, path="", format_exception=_describe_error)
        except Exception:  # pragma: no cover - transform_error copes with any cattrs error
            lines = [str(cause)]
        return "; ".join(line.replace(" @ .", " at ").replace(" @ ", " at ") for line in lines[:5])
    return str(cause) or type(cause).__name__


def _describe_error(exc: BaseException, type_: Any) -> str:
    """cattrs' wording, or the validator's own message where cattrs only says "invalid value"
    (lsprotocol's range checks: "Position.line should be in range [0:2147483647], but was -1")."""
    text = format_exception(exc, type_)
    return str(exc) if text == "invalid value" and str(exc) else text


class TinyarmsProtocol(LanguageServerProtocol):
    """pygls' LSP protocol with the edge cases above answered."""

    closed = False  # the transport is gone (after `exit`, or the client hung up)

    # -- reading -----------------------------------------------------------------------

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "jsonrpc" in data and "method" in data and "id" in data:
                method = str(data.get("method"))
                return _BadRequest(data["id"], method, f"invalid params for {method}: {_field_errors(exc)}")
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _BadRequest):
            log.warning("request %r (%s) refused: %s", message.id, message.method, message.message)
            self.reply_error(message.id, INVALID_PARAMS, message.message)
            return
        if isinstance(message, dict) or not hasattr(message, "jsonrpc"):
            # Not JSON-RPC 2.0 (pygls would drop it): a request among such still gets an answer.
            msg_id = message.get("id") if isinstance(message, dict) else None
            if msg_id is not None or not isinstance(message, dict):
                self.reply_error(msg_id, INVALID_REQUEST, "not a JSON-RPC 2.0 message")
            return
        super().handle_message(message)

    def receive(self, body: bytes) -> None:
        """One message body off the wire: parse it and hand it on; never raises."""
        try:
            message = json.loads(body, object_hook=self.structure_message)
        except (ValueError, RecursionError) as exc:  # not JSON (UnicodeDecodeError is a ValueError)
            log.warning("message is not JSON: %s", one_line(str(exc), 200))
            self.reply_error(None, PARSE_ERROR, f"parse error: {one_line(str(exc), 200)}")
            return
        except JsonRpcException as exc:  # a notification or response that does not fit its type
            log.warning("message dropped: %s", one_line(_field_errors(exc)))
            return
        try:
            self.handle_message(message)
        except Exception:
            log.exception("message could not be handled")

    # -- writing -----------------------------------------------------------------------

    def reply_error(self, msg_id: Any, code: int, message: str) -> None:
        if not isinstance(msg_id, (int, str)) or isinstance(msg_id, bool):
            msg_id = None
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": one_line(message)}})

    def _send_response(self, msg_id: Any, result: Any | None = None, error: Any | None = None) -> None:
        if error is not None:
            if error.data is not None:
                log.error("request %r failed: %s\n%s", msg_id, error.message, _traceback_text(error.data))
            error.data = None
            error.message = one_line(error.message)
        super()._send_response(msg_id, result, error)

    def _send_data(self, data: Any) -> None:
        if self.closed or not data:
            return
        writer = self.writer
        if getattr(getattr(writer, "_stdout", None), "closed", False):
            self.closed = True
            return
        try:
            super()._send_data(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True


def _traceback_text(data: Any) -> str:
    frames = data.get("traceback") if isinstance(data, dict) else None
    return "".join(frames) if isinstance(frames, list) else str(data)


def invalid_params(message: str) -> JsonRpcInvalidParams:
    """The error a command raises for arguments of the wrong shape."""
    return JsonRpcInvalidParams(message=one_line(message))


# -- the read loop ---------------------------------------------------------------------


async def read_messages(stop: threading.Event, readline: Any, read: Any, protocol: TinyarmsProtocol) -> None:
    """pygls' `run_async` with bounded lengths and lines: `readline(limit)` and `read(n)`
    are awaitables over the transport."""
    length: int | None = None
    bad_header: str | None = None
    while not stop.is_set():
        line = await readline(MAX_HEADER_LINE)
        if not line:
            break
        if line.strip():
            if match := _CONTENT_LENGTH.search(line):
                value = match.group(1)
                length, bad_header = (int(value), None) if value.isdigit() else (None, value.decode(errors="replace"))
            continue
        # The blank line that ends the headers.
        if bad_header is not None:
            protocol.reply_error(None, INVALID_REQUEST, f"bad Content-Length {bad_header[:40]!r}")
            bad_header = None
            continue
        if length is None:
            continue
        size, length = length, None
        if size > MAX_MESSAGE_BYTES:
            log.error("message of %d bytes refused (limit %d); looking for the next header", size, MAX_MESSAGE_BYTES)
            protocol.reply_error(
                None, INVALID_REQUEST, f"message of {size} bytes refused: the limit is {MAX_MESSAGE_BYTES} bytes"
            )
            continue
        body = await read(size)
        if len(body) < size:
            break  # the client hung up mid-message
        protocol.receive(body)


def stdio_reader(stdin: Any, loop: asyncio.AbstractEventLoop, executor: Any) -> tuple[Any, Any]:
    """(readline, read) over a binary stdin, in `executor` threads."""

    def readline(limit: int) -> Any:
        return loop.run_in_executor(executor, stdin.readline, limit)

    def read(size: int) -> Any:
        return loop.run_in_executor(executor, _read_exactly, stdin, size)

    return readline, read


def _read_exactly(stream: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def stream_reader(reader: asyncio.StreamReader) -> tuple[Any, Any]:
    """(readline, read) over an asyncio stream (TCP)."""

    async def readline(limit: int) -> bytes:
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial
        except asyncio.LimitOverrunError as exc:
            return await reader.read(min(exc.consumed, limit) or limit)

    async def read(size: int) -> bytes:
        try:
            return await reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    return readline, read


# -- transports (pygls' start_io / start_tcp with the read loop above) -------------------


def run_stdio(server: Any, stdin: Any, stdout: Any) -> None:
    from pygls.io_ import StdoutWriter

    server._stop_event = stop = threading.Event()
    server.protocol.set_writer(StdoutWriter(stdout))

    async def main() -> None:
        readline, read = stdio_reader(stdin, asyncio.get_running_loop(), server.thread_pool)
        await read_messages(stop, readline, read, server.protocol)

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("the connection to the client is lost; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.protocol.closed = True
        server.shutdown()


def run_tcp(server: Any, host: str, port: int) -> None:
    server._stop_event = stop = threading.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.protocol.set_writer(writer)
        server.protocol.closed = False
        readline, read = stream_reader(reader)
        await read_messages(stop, readline, read, server.protocol)
        server.shutdown()

    async def main() -> None:
        server._server = await asyncio.start_server(connection, host, port, limit=MAX_HEADER_LINE)
        log.info("serving on %s", ", ".join(str(s.getsockname()) for s in server._server.sockets))
        async with server._server:
            await server._server.serve_forever()

    try:
        asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.protocol.closed = True
        server.shutdown()
