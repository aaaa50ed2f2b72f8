"""What chat and edit read from the editor's side: documents, workspace folders, diagnostics.

- A document is the editor's copy when it is open (its version is what a stale-edit check
  compares), else the file on disk (no version).
- The workspace folders are the roots `@path` files are confined to; a client with no folder
  (a single file) gets the file's own folder.
- LSP gives a server no way to ask for the diagnostics other tools show, but every
  `textDocument/codeAction` request carries the ones at the range. The last ones seen per
  document are kept (this feature's `code_actions` offers nothing, it only listens) and used
  as the "diagnostics in the range" of a later chat or edit.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls import uris
from pygls.exceptions import JsonRpcInvalidParams

from tinyarms.features.base import Feature
from tinyarms.requests import context

if TYPE_CHECKING:
    from pygls.workspace import TextDocument

log = logging.getLogger(__name__)

SEVERITY = {1: "error", 2: "warning", 3: "information", 4: "hint"}


def fs_path(uri: str) -> str:
    path = uris.to_fs_path(uri)
    if not path:
        raise JsonRpcInvalidParams(f"{uri!r} is not a file: URI")
    return path


class Documents(Feature):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._diagnostics: dict[str, list[types.Diagnostic]] = {}

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        self._diagnostics[params.text_document.uri] = list(params.context.diagnostics or [])
        return []

    def document_closed(self, params: types.DidCloseTextDocumentParams) -> None:
        self._diagnostics.pop(params.text_document.uri, None)

    def document(self, uri: str) -> TextDocument:
        """The open document, or the file on disk; an unreadable one is an InvalidParams error."""
        path = fs_path(uri)
        document = self.server.workspace.get_text_document(uri)
        try:
            document.source  # noqa: B018 - reads the file when the document is not open
        except OSError as exc:
            raise JsonRpcInvalidParams(f"cannot read {path}: {exc.strerror or exc}") from None
        return document

    def version(self, uri: str) -> int | None:
        try:
            return self.server.workspace.get_text_document(uri).version
        except Exception:
            return None

    def roots(self, uri: str | None) -> list[str]:
        folders = [uris.to_fs_path(f.uri) for f in self.server.workspace.folders.values()]
        roots = [f for f in folders if f]
        if not roots and self.server.workspace.root_path:
            roots = [self.server.workspace.root_path]
        if not roots and uri:
            path = uris.to_fs_path(uri)
            roots = [os.path.dirname(path)] if path else []
        # The folder that holds the document first: its rules are the ones that apply.
        path = uris.to_fs_path(uri) if uri else None
        if path:
            real = os.path.realpath(path)
            roots.sort(key=lambda root: not real.startswith(os.path.realpath(root) + os.sep))
        return roots

    def where(self, uri: str | None, selection: types.Range | None) -> context.Where | None:
        """The document and range a request is about (UTF-16 columns converted), or None."""
        if not uri:
            return None
        try:
            document = self.document(uri)
        except JsonRpcInvalidParams as exc:
            log.warning("could not read %s: %s", uri, exc)
            return None
        if selection is None:
            return context.Where(path=fs_path(uri), text=document.source, first_line=0, last_line=0)
        start, end = (document.offset_at_position(p) for p in (selection.start, selection.end))
        text = document.source
        first, last = text.count("\n", 0, start), text.count("\n", 0, max(end - 1, start))
        return context.Where(path=fs_path(uri), text=text, first_line=first, last_line=last, selection=text[start:end])

    def diagnostics(self, uri: str | None) -> list[context.Diagnostic]:
        """The diagnostics the editor last showed for `uri` (from its code action requests)."""
        return [
            context.Diagnostic(line=d.range.start.line, message=d.message,
                               severity=SEVERITY.get(int(d.severity or 1), "error"),
                               source=d.source)  # fmt: skip
            for d in self._diagnostics.get(uri or "", [])
        ]
