"""Autocomplete over LSP: `textDocument/inlineCompletion` (ghost text) for clients that
declare it, `textDocument/completion` (one item) for clients that do not (Neovim 0.11).

The model loads in the background after `initialized` (with `$/progress` when the client
supports it); until it is ready every request answers empty at once. The engine
(autocomplete/engine.py) owns the time budget and the caches; this module turns LSP
positions into lines and columns and answers into items with explicit ranges.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from tinyarms.autocomplete.engine import Completion, CompletionEngine, CompletionRequest
from tinyarms.autocomplete.start import NotLocal, local_tier, start_engine
from tinyarms.autocomplete.templates import UnknownTemplate
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.local_model import LocalModel, LocalModelError

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from tinyarms.config import Config
    from tinyarms.protocol import ToggleArgs

log = logging.getLogger(__name__)

TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", " ", "=", ":"]


class AutocompleteFeature(Feature):
    def __init__(self, server: LanguageServer, settings: Settings, status: Status) -> None:
        super().__init__(server, settings, status)
        self.enabled = True
        self.engine: CompletionEngine | None = None
        self.model: LocalModel | None = None
        self.tier_name = ""
        self._settings: tuple[Any, ...] | None = None
        self._loader: asyncio.Task[None] | None = None
        self._lines: tuple[str, int | None, list[str]] | None = None  # (uri, version, lines)

    # -- model lifecycle ----------------------------------------------------------------

    async def initialized(self) -> None:
        if self.settings.config is not None:
            self.config_changed(self.settings.config)

    def config_changed(self, config: Config) -> None:
        role = config.roles.autocomplete
        if not role.enabled:
            self._publish_state("off", "roles.autocomplete.enabled is false")
            log.info("autocomplete: off (roles.autocomplete.enabled = false)")
            self._unload()
            return
        try:
            tier = local_tier(config)
        except NotLocal as exc:
            self._publish_state("off", str(exc))
            log.warning("autocomplete: %s; autocomplete is off", exc)
            self._unload()
            return
        settings = (tier.model, tier.n_ctx, tier.n_threads, tier.template)
        if self.engine is not None:
            self.engine.max_latency_ms = role.max_latency_ms
            self.engine.multiline = role.multiline
        self.tier_name = role.tier
        if settings == self._settings:
            return
        self._settings = settings
        if self._loader and not self._loader.done():
            self._loader.cancel()
        self._loader = asyncio.ensure_future(self._load(config))

    def _unload(self) -> None:
        self._settings = None
        if self._loader and not self._loader.done():
            self._loader.cancel()
        if self.engine:
            self.engine.clear()
        self.engine = None
        if self.model:
            asyncio.ensure_future(self.model.shutdown())
        self.model = None

    async def _load(self, config: Config) -> None:
        tier = local_tier(config)
        token = await self._progress_begin(f"tinyarms: loading {tier.model}")
        try:
            engine = await start_engine(config, on_model_change=self._model_changed)
        except (LocalModelError, UnknownTemplate) as exc:
            log.error("autocomplete: %s could not be loaded: %s", tier.model, exc)
            self._publish_state("failed", str(exc))
            self._progress_end(token, f"failed: {exc}")
            return
        old = self.model
        model = self.model = engine.model
        self.engine = engine
        self.engine.on_change = lambda: self._publish_state(model.state, model.error)
        if old is not None and old is not model:
            await old.shutdown()
        log.info("autocomplete: %s ready (template %s)", tier.model, engine.template.name)
        self._publish_state("ready")
        self._progress_end(token, "ready")

    def _model_changed(self, model: LocalModel) -> None:
        loading_first = self.model is None and self._settings is not None
        if model is self.model or loading_first:
            self._publish_state(model.state, model.error, model)

    def _publish_state(self, state: str, error: str | None = None, model: LocalModel | None = None) -> None:
        model = model or self.model
        self.status.last["model"] = {
            "autocomplete": {
                "state": state,
                "tier": self.tier_name,
                "model": model.spec if model else (self._settings[0] if self._settings else None),
                "path": model.path if model else None,
                "template": self.engine.template.name if self.engine else None,
                "crashes": model.crashes if model else 0,
                "last_failure": model.last_failure if model else None,  # "crashed: ..." or "hung: ..."
                "error": error,
                "enabled": self.enabled,
                "running": bool(self.engine and self.engine.running),
                "counts": dict(self.engine.counts) if self.engine else {},
                "last_generation": self.engine.last_stats if self.engine else {},
            }
        }

    async def _progress_begin(self, title: str) -> str | None:
        window = self.server.client_capabilities.window
        if not (window and window.work_done_progress):
            return None
        token = f"tinyarms-load-{uuid.uuid4().hex[:8]}"
        try:
            await asyncio.wait_for(self.server.work_done_progress.create_async(token), timeout=5)
            self.server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, cancellable=False))
            return token
        except Exception as exc:  # a client that does not answer must not stop the load
            log.debug("no progress for model load: %s", exc)
            return None

    def _progress_end(self, token: str | None, message: str) -> None:
        if token is not None:
            try:
                self.server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
            except Exception:
                log.debug("progress end not sent", exc_info=True)

    def shutdown(self) -> None:
        if self._loader:
            self._loader.cancel()
        if self.engine:
            self.engine.clear()
        if self.model:
            self.model.kill_now()

    # -- requests ---------------------------------------------------------------------

    def _document_lines(self, uri: str) -> list[str] | None:
        document = self.server.workspace.text_documents.get(uri)
        if document is None:
            log.warning("autocomplete: %s is not an open document (no didOpen); no completion", uri)
            return None
        if document.version is not None and self._lines and self._lines[:2] == (uri, document.version):
            return self._lines[2]
        source = document.source
        if "\r" in source:
            source = source.replace("\r\n", "\n")
        lines = source.split("\n")
        self._lines = (uri, document.version, lines)
        return lines

    async def _complete(self, uri: str, position: types.Position) -> tuple[Completion, int, str, int, int] | None:
        """(completion, line, line text, cursor column, word start column); columns in code points."""
        if not self.enabled or self.engine is None:
            return None
        lines = self._document_lines(uri)
        if lines is None:
            return None
        line = position.line
        if line >= len(lines) or line < 0:
            log.info("autocomplete: line %d is past the end of %s (%d lines); using its end", line, uri, len(lines))
            line = len(lines) - 1
            position = types.Position(line, 1 << 30)
        text = lines[line]
        column = _column(text, position.character, self.server.workspace.position_encoding)
        result = await self.engine.complete(CompletionRequest(lines, line, column, doc=uri, path=_path(uri)))
        word_start = column
        while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] == "_"):
            word_start -= 1
        if self.model:
            self._publish_state(self.model.state, self.model.error)
        if result.text:
            self.status.notify(
                "completion",
                {
                    "tier": self.tier_name,
                    "model": result.model,
                    "elapsed_ms": result.elapsed_ms,
                    "source": result.source,  # cache | speculation | model
                },
            )
        return result, line, text, column, word_start

    async def _complete_safely(
        self, uri: str, position: types.Position
    ) -> tuple[Completion, int, str, int, int] | None:
        """A failing completion never breaks the request: it logs and answers empty."""
        try:
            return await self._complete(uri, position)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("autocomplete: completion at %s:%d failed", uri, position.line)
            return None

    def _range(self, line: int, text: str, word_start: int, column: int) -> types.Range:
        encoding = self.server.workspace.position_encoding
        return types.Range(
            start=types.Position(line, _units(text[:word_start], encoding)),
            end=types.Position(line, _units(text[:column], encoding)),
        )

    async def inline_completion(self, params: types.InlineCompletionParams) -> types.InlineCompletionList:
        answer = await self._complete_safely(params.text_document.uri, params.position)
        if answer is None or not answer[0].text:
            return types.InlineCompletionList(items=[])
        completion, line, text, column, word_start = answer
        return types.InlineCompletionList(
            items=[
                types.InlineCompletionItem(
                    insert_text=text[word_start:column] + completion.text,
                    range=self._range(line, text, word_start, column),
                )
            ]
        )

    async def completion(self, params: types.CompletionParams) -> types.CompletionList:
        caps = self.server.client_capabilities.text_document
        if caps is not None and caps.inline_completion is not None:
            return types.CompletionList(is_incomplete=False, items=[])  # the client shows ghost text instead
        answer = await self._complete_safely(params.text_document.uri, params.position)
        if answer is None or not answer[0].text:
            return types.CompletionList(is_incomplete=True, items=[])
        completion, line, text, column, word_start = answer
        insert = text[word_start:column] + completion.text
        return types.CompletionList(
            is_incomplete=True,  # ask again on the next keystroke: the answer depends on it
            items=[
                types.CompletionItem(
                    label=insert.split("\n", 1)[0][:80] or insert[:80],
                    kind=types.CompletionItemKind.Text,
                    detail=f"tinyarms {completion.model} ({completion.elapsed_ms:.0f} ms)",
                    filter_text=insert,
                    sort_text="0",
                    insert_text_format=types.InsertTextFormat.PlainText,
                    text_edit=types.TextEdit(range=self._range(line, text, word_start, column), new_text=insert),
                )
            ],
        )

    # -- commands ---------------------------------------------------------------------

    def toggle(self, args: ToggleArgs) -> dict[str, Any]:
        """`tinyarms.toggleAutocomplete`: off or on for this session (no `enabled`: flip)."""
        self.enabled = (not self.enabled) if args.enabled is None else args.enabled
        if not self.enabled and self.engine:
            self.engine.clear()
        log.info("autocomplete %s", "on" if self.enabled else "off")
        if self.model:
            self._publish_state(self.model.state, self.model.error)
        return {"enabled": self.enabled}

    async def crash_model(self) -> dict[str, Any]:
        """Test only: make the model child segfault, as a native crash would."""
        if self.model is None:
            return {"crashed": False}
        try:
            await self.model.crash()
        except LocalModelError as exc:
            return {"crashed": True, "error": str(exc)}
        return {"crashed": False}


def _column(text: str, character: int, encoding: Any) -> int:
    """A client column (UTF-16 units by default) as a code point index, clamped to the line."""
    if encoding in (types.PositionEncodingKind.Utf32, "utf-32") or text.isascii():
        return max(0, min(character, len(text)))
    units = 0
    for index, char in enumerate(text):
        if units >= character:
            return index
        units += _units(char, encoding)
    return len(text)


def _units(text: str, encoding: Any) -> int:
    if encoding in (types.PositionEncodingKind.Utf8, "utf-8"):
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding in (types.PositionEncodingKind.Utf32, "utf-32"):
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _path(uri: str) -> str | None:
    from pygls.uris import to_fs_path

    try:
        return to_fs_path(uri)
    except Exception:
        return None
