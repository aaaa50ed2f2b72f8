"""Logging: stderr always (stdout is the LSP transport), and the editor's log via
window/logMessage once a server is running."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

_LEVELS = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
    logging.DEBUG: types.MessageType.Log,
}


def setup(verbosity: int = 0) -> None:
    """-v shows info, -vv debug. Library chatter stays at warning."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tinyarms").setLevel(level)


class ClientLogHandler(logging.Handler):
    """Forwards tinyarms log records to the editor (esbonio does the same)."""

    def __init__(self, server: LanguageServer, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.server = server
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message_type = _LEVELS.get(record.levelno, types.MessageType.Log)
            self.server.window_log_message(types.LogMessageParams(type=message_type, message=self.format(record)))
        except Exception:  # the transport may be closing; never fail a log call
            pass
