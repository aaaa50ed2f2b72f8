"""Autocomplete over LSP: `textDocument/inlineCompletion` (ghost text) for clients that
declare it, `textDocument/completion` (one item) for clients that do not (Neovim 0.11).

The model loads in the background after `initialized` (with `$/progress` when the client
supports it); until it is ready every request answers empty at once. The engine
(autocomplete/engine.py) owns the time budget and the caches; this module turns LSP
positions into lines and columns and answers into items with explicit ranges.

Project context (autocomplete/context.py) is gathered here, off the keystroke path: the
document events feed the ring buffer, and a file's block is rebuilt on didOpen and after
CONTEXT_IDLE_S without edits (between bursts of typing, never during one), in a thread.
A new block, or a newly opened file, is evaluated ahead (`engine.prefill`).

So is a new place in a file: LSP has no cursor notification, so the clients send
`tinyarms/cursorMoved` (protocol.py), and an edit far from the last prompt's window counts
too. The place is prefilled once the cursor rests CURSOR_SETTLE_S (moving through a file
with the arrow keys starts nothing), unless the model has most of that prompt evaluated
already; a keystroke there cancels the wait, and one during the prefill pre-empts it. A
cold window costs ~0.7 s to evaluate on 2 shared cores, so only a warm first keystroke
fits the 100 ms budget: the user's pause after moving is when that work can happen.

Every item carries `command` = `tinyarms.autocomplete.feedback` `{id, event: "accepted"}`;
the editor reports shown / partial / dismissed through the same command
(autocomplete/feedback.py records them).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from tinyarms import protocol
from tinyarms.autocomplete.context import ContextBlock, Project, estimate_tokens
from tinyarms.autocomplete.engine import Completion, CompletionEngine, CompletionRequest
from tinyarms.autocomplete.feedback import FeedbackLog, Offered
from tinyarms.autocomplete.remote import RemoteFim
from tinyarms.autocomplete.start import NotLocal, local_tier, remote_for, start_engine
from tinyarms.autocomplete.templates import UnknownTemplate
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.local_model import LocalModel, LocalModelError

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from tinyarms.config import Config
    from tinyarms.protocol import CursorMovedParams, FeedbackArgs, ToggleArgs

log = logging.getLogger(__name__)

FEEDBACK = protocol.AUTOCOMPLETE_FEEDBACK
TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", " ", "=", ":"]
CONTEXT_IDLE_S = 1.0  # a file's context block is rebuilt after this long without edits
# A didOpen builds the block this much later, unless another didOpen comes first: an editor
# restoring 200 tabs sends 200 at once, and only the last one is where the user is (the
# others get theirs when used). 204 stdlib files: open-and-build 21.2 s -> 0.97 s.
OPEN_SETTLE_S = 0.05
MAX_CHUNK_SOURCE = 2_000_000  # characters; a bigger buffer gives no ring-buffer chunks
PROMPT_RESERVE_TOKENS = 1280  # of n_ctx, kept for the file's own window and the answer
CURSOR_SETTLE_S = 0.2  # a cursor at rest this long is at a new place (a held arrow key repeats every ~30-50 ms)
FAR_LINES = 8  # an edit more than this below the last prompt's cursor line, or above its start, is a new place


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
        self.project = Project()
        self.context_enabled = True
        self.prefill_enabled = True
        self.prefill_on_cursor = True
        self.feedback = FeedbackLog()
        self._places: dict[str, types.Position] = {}  # document -> the cursor's last known place
        self._cursor_timer: asyncio.TimerHandle | None = None
        self._cursor_uri: str | None = None  # the document `_cursor_timer` waits for
        self._prefill_wanted: str | None = None  # a document whose prefill waits for a generation to end
        self._published: tuple[str, str | None] | None = None  # the state last shown in tinyarms.status
        self.cursor_counts: Counter[str] = Counter()  # tinyarms/cursorMoved and far edits: what became of them
        self.context_counts: Counter[str] = Counter()  # rebuilds of a block: changed or the same
        self._last_line: dict[str, int] = {}  # document -> line of its last edit or completion
        self._active: str | None = None  # the document the user works in
        self._refresh_timer: asyncio.TimerHandle | None = None
        self._refreshing: asyncio.Lock | None = None
        self._block_used: ContextBlock | None = None
        self._context_settings: tuple[Any, ...] | None = None

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
            remote = remote_for(config)
        except NotLocal as exc:
            self._publish_state("off", str(exc))
            log.warning("autocomplete: %s; autocomplete is off", exc)
            self._unload()
            return
        settings = (tier.model, tier.n_ctx, tier.n_threads, tier.template)
        self.prefill_enabled = role.prefill
        self.prefill_on_cursor = role.prefill_on_cursor
        if not self._cursor_prefill_on():
            self._cancel_cursor_wait()
        self.feedback.enabled, self.feedback.with_text = role.feedback, role.feedback_text
        context = (
            role.context and role.context_tokens > 0,
            role.context_chunks,
            role.context_chunk_lines,
            min(role.context_tokens, max(0, (tier.n_ctx or 2048) - PROMPT_RESERVE_TOKENS)),
        )
        if context != self._context_settings:
            self._context_settings = context
            self.context_enabled = context[0]
            self.project.configure(size=context[1], chunk_lines=context[2], max_tokens=context[3])
            self.project.blocks.clear()  # rebuilt with the new settings
            if self.context_enabled and self._active:
                asyncio.ensure_future(self._refresh(self._active, prefill=True))
        if self.model is not None:
            self._publish_state(self.model.state, self.model.error)
        if self.engine is not None:
            self.engine.max_latency_ms = role.max_latency_ms
            self.engine.multiline = role.multiline
            self._set_remote(self.engine, remote)
        elif remote is not None:
            asyncio.ensure_future(remote.aclose())  # the engine, once loaded, makes its own
        self.tier_name = role.tier
        if settings == self._settings:
            return
        self._settings = settings
        if self._loader and not self._loader.done():
            self._loader.cancel()
        self._loader = asyncio.ensure_future(self._load(config))

    @staticmethod
    def _set_remote(engine: CompletionEngine, remote: RemoteFim | None) -> None:
        """The engine's remote tier: kept (with its cooldown and connections) while its settings stay."""
        old = engine.remote
        if old is not None and remote is not None and old.settings == remote.settings:
            asyncio.ensure_future(remote.aclose())
            return
        engine.remote = remote
        if old is not None:
            asyncio.ensure_future(old.aclose())

    def _unload(self) -> None:
        self._settings = None
        if self._loader and not self._loader.done():
            self._loader.cancel()
        if self.engine:
            self.engine.clear()
            self._set_remote(self.engine, None)
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
        self.engine.on_change = lambda: self._generation_ended(model)
        if old is not None and old is not model:
            await old.shutdown()
        log.info("autocomplete: %s ready (template %s)", tier.model, engine.template.name)
        self._publish_state("ready")
        self._progress_end(token, "ready")
        if self._active:
            self._prefill(self._active)  # the file the user is in, ready before the first keystroke

    def _generation_ended(self, model: LocalModel) -> None:
        self._publish_state(model.state, model.error)
        wanted, self._prefill_wanted = self._prefill_wanted, None
        if wanted is not None and self.engine is not None and not self.engine.running:
            self._prefill(wanted, skip_warm=True)  # deferred while the generation ran

    def _model_changed(self, model: LocalModel) -> None:
        loading_first = self.model is None and self._settings is not None
        if model is self.model or loading_first:
            self._publish_state(model.state, model.error, model)

    def _publish_state(self, state: str, error: str | None = None, model: LocalModel | None = None) -> None:
        self._published = (state, error)
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
                "context": self._context_status(),
                "remote": self.engine.remote.status() if self.engine and self.engine.remote else None,
                "feedback": dict(self.feedback.counts),
                "prefill": {
                    "enabled": self.prefill_enabled,
                    "on_cursor": self.prefill_on_cursor,
                    "cursor": dict(self.cursor_counts),
                    "last": self.engine.last_prefill if self.engine else {},
                },
            }
        }

    def _context_status(self) -> dict[str, Any]:
        active = self.project.blocks.get(self._active) if self._active else None
        return {
            "enabled": self.context_enabled,
            "chunks": len(self.project.ring.chunks),
            "max_tokens": self.project.max_tokens,
            "documents": len(self.project.blocks),
            "active": self._active,
            "active_built": self._active in self.project.blocks,
            "active_files": [label for label, _ in active.files] if active else [],
            "active_tokens_estimate": active.tokens_estimate if active else 0,
            "active_tokens": active.tokens if active else 0,  # the model's tokenizer, once counted
            "last_used_tokens_estimate": self._block_used.tokens_estimate if self._block_used else 0,
            "rebuilds": dict(self.context_counts),
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
        self._cancel_cursor_wait()
        if self._loader:
            self._loader.cancel()
        if self.engine:
            self.engine.clear()
        if self.model:
            self.model.kill_now()

    # -- project context (off the keystroke path) ----------------------------------------

    def _roots(self) -> list[Path]:
        workspace = self.server.workspace
        roots = [Path(p) for f in workspace.folders.values() if (p := _path(f.uri))]
        if not roots and workspace.root_path:
            roots = [Path(workspace.root_path)]
        return roots

    def document_opened(self, params: types.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        self._leave(self._active)
        self._active = uri
        if not self.context_enabled:
            return
        self.project.set_roots(self._roots())
        text = params.text_document.text
        lines = text.split("\n") if len(text) < MAX_CHUNK_SOURCE else []
        self.project.ring.add(uri, self.project.label(_fs(uri), uri), lines, self._last_line.get(uri, 0))
        self._schedule_refresh(uri, OPEN_SETTLE_S)

    def document_changed(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                self._last_line[uri] = change.range.start.line
                self._edited_at(uri, _end_of(change, self.server.workspace.position_encoding))
                break
        if uri != self._active:
            self._leave(self._active)
            self._active = uri
        self._schedule_refresh(uri)

    def _edited_at(self, uri: str, place: types.Position) -> None:
        """An edit far from the window of the last prompt here is a new place, like a cursor move."""
        self._places[uri] = place
        window = self.engine.window(uri) if self.engine else None
        if window is None or not self._cursor_prefill_on():
            return
        first, cursor = window
        if place.line < first or place.line > cursor + FAR_LINES:
            self.cursor_counts["far_edit"] += 1
            self._wait_for_cursor(uri, place)

    # -- a new place: tinyarms/cursorMoved (off the keystroke path) ----------------------

    def _cursor_prefill_on(self) -> bool:
        return self.prefill_enabled and self.prefill_on_cursor and self.enabled

    def cursor_moved(self, params: CursorMovedParams) -> None:
        """`tinyarms/cursorMoved`: prefill there once the cursor settles."""
        self.cursor_counts["received"] += 1
        if self.cursor_counts["received"] == 1:  # once a session: says the client sends them
            log.info("autocomplete: the client sends %s; places are prefilled where it rests", protocol.CURSOR_MOVED)
        uri = params.textDocument.uri
        if not self._cursor_prefill_on():
            self.cursor_counts["off"] += 1
            self._status_changed()
            return
        if uri not in self.server.workspace.text_documents:
            self.cursor_counts["not_open"] += 1
            return
        self._places[uri] = params.position
        self._wait_for_cursor(uri, params.position)
        self._status_changed()

    def _wait_for_cursor(self, uri: str, place: types.Position) -> None:
        if self._cancel_cursor_wait():
            self.cursor_counts["superseded"] += 1  # it moved again before settling
        self._cursor_uri = uri
        self._cursor_timer = asyncio.get_running_loop().call_later(
            CURSOR_SETTLE_S, lambda: asyncio.ensure_future(self._cursor_settled(uri, place))
        )

    def _cancel_cursor_wait(self) -> bool:
        timer, self._cursor_timer, self._cursor_uri = self._cursor_timer, None, None
        if timer is None:
            return False
        timer.cancel()
        return True

    async def _cursor_settled(self, uri: str, place: types.Position) -> None:
        self._cursor_timer = self._cursor_uri = None
        try:
            await self._prefill_place(uri, place)
        except Exception:  # a failing prefill never breaks typing
            self.cursor_counts["error"] += 1
            log.exception("autocomplete: prefill at %s:%d failed", uri, place.line)
        finally:
            self._status_changed()

    async def _prefill_place(self, uri: str, place: types.Position) -> None:
        lines = self._document_lines(uri) if uri in self.server.workspace.text_documents else None
        if lines is None or self.engine is None:
            self.cursor_counts["not_ready"] += 1
            return
        self.cursor_counts["settled"] += 1
        line = max(0, min(place.line, len(lines) - 1))
        self._last_line[uri] = line  # the ring chunk taken when the user leaves follows them
        if uri != self._active:
            self._leave(self._active)
            self._active = uri
        if self.context_enabled and uri not in self.project.blocks:
            await self._refresh(uri, prefill=False)  # one prefill below covers the new block too
        self._prefill(uri, skip_warm=True)

    def _status_changed(self) -> None:
        if self.model is not None:
            self._publish_state(self.model.state, self.model.error)
        elif self._published is not None:  # loading, off or failed: the counts still show
            self._publish_state(*self._published)

    def document_saved(self, params: types.DidSaveTextDocumentParams) -> None:
        self._take_chunk(params.text_document.uri)
        self._schedule_refresh(params.text_document.uri)

    def document_closed(self, params: types.DidCloseTextDocumentParams) -> None:
        # Its chunks stay in the ring buffer (a file just closed is still relevant).
        self.project.forget(params.text_document.uri)
        self._last_line.pop(params.text_document.uri, None)
        self._places.pop(params.text_document.uri, None)
        if self._active == params.text_document.uri:
            self._active = None

    def _leave(self, uri: str | None) -> None:
        """The user moved to another file: remember where they were in this one."""
        if uri is not None:
            self._take_chunk(uri)

    def _take_chunk(self, uri: str) -> None:
        if not self.context_enabled:
            return
        document = self.server.workspace.text_documents.get(uri)
        if document is not None and len(document.source) < MAX_CHUNK_SOURCE:
            lines = document.source.split("\n")
            self.project.ring.add(uri, self.project.label(_fs(uri), uri), lines, self._last_line.get(uri, 0))

    def _schedule_refresh(self, uri: str, delay: float = CONTEXT_IDLE_S) -> None:
        """Rebuild `uri`'s block once the edits (or the didOpens) pause, never in the middle
        of a burst; a newer one, in any document, replaces it."""
        if not self.context_enabled:
            return
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
        loop = asyncio.get_running_loop()
        self._refresh_timer = loop.call_later(delay, lambda: asyncio.ensure_future(self._refresh(uri, prefill=True)))

    async def _refresh(self, uri: str, *, prefill: bool) -> None:
        """Build `uri`'s block in a thread; a changed block is evaluated ahead."""
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        document = self.server.workspace.text_documents.get(uri)
        if document is None or not self.context_enabled:
            return
        open_texts: dict[Path, str] = {}
        for other in list(self.server.workspace.text_documents.values()):
            if other.uri != uri and (fs := _fs(other.uri)) is not None:
                open_texts[fs.resolve()] = other.source
        source = document.source

        async def build() -> ContextBlock | None:
            return await asyncio.to_thread(self.project.build, uri, _fs(uri), source, open_texts)

        async with self._refreshing:
            try:
                block = await self.project.measured(uri, build, self._count_tokens)
            except Exception:
                log.exception("autocomplete: context for %s not built", uri)
                return
        changed = uri not in self.project.blocks or self.project.blocks[uri] != block
        if uri in self.project.blocks:  # a rebuilt block: changed, it is a cold prompt again
            self.context_counts["rebuilt_" + ("changed" if changed else "same")] += 1
        self.project.blocks[uri] = block
        if self.model is not None:
            self._publish_state(self.model.state, self.model.error)
        if changed:
            log.debug(
                "autocomplete: context of %s: %d files, ~%d tokens",
                uri,
                len(block.files) if block else 0,
                block.tokens_estimate if block else 0,
            )
        if prefill and (changed or uri == self._active):
            self._prefill(uri)

    async def _count_tokens(self, text: str) -> int:
        """The model's token count of `text` (a block's real size); the estimate's if the
        model is not ready or fails (then the cap holds for the estimate only)."""
        model = self.model
        if model is None or not model.ready:
            return estimate_tokens(text)
        try:
            return len(await model.tokenize(text))
        except LocalModelError:
            return estimate_tokens(text)

    def _prefill(self, uri: str, *, skip_warm: bool = False) -> None:
        """Evaluate the prompt at the last place in `uri` ahead, if nothing else runs (else
        once the running generation ends). `skip_warm`: not if it is mostly evaluated."""
        if not (self.prefill_enabled and self.enabled and self.engine and uri == self._active):
            return
        lines = self._document_lines(uri)
        if lines is None:
            return
        place = self._places.get(uri)
        if place is not None:
            line = max(0, min(place.line, len(lines) - 1))
            column = _column(lines[line], place.character, self.server.workspace.position_encoding)
        else:
            line = min(self._last_line.get(uri, 0), len(lines) - 1)
            column = len(lines[line]) if uri in self._last_line else 0
        request = CompletionRequest(lines, line, column, doc=uri, path=_path(uri), context=self._context(uri))
        if self.engine.prefill(request, skip_warm=skip_warm):
            log.debug("autocomplete: prefill %s:%d", uri, line)
        elif self.engine.running:
            self._prefill_wanted = uri

    def _context(self, uri: str) -> ContextBlock | None:
        return self.project.blocks.get(uri) if self.context_enabled else None

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
        self._last_line[uri] = line
        self._places[uri] = position
        if self._cursor_uri == uri and self._cancel_cursor_wait():
            self.cursor_counts["keystroke_first"] += 1  # this request evaluates the place itself
        if uri != self._active:
            self._leave(self._active)
            self._active = uri
        context = self._context(uri)
        if self.context_enabled and uri not in self.project.blocks:
            asyncio.ensure_future(self._refresh(uri, prefill=False))  # for the next keystrokes
        self._block_used = context or self._block_used
        result = await self.engine.complete(
            CompletionRequest(lines, line, column, doc=uri, path=_path(uri), context=context)
        )
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
                    command=self._accept_command(params.text_document.uri, completion),
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
                    command=self._accept_command(params.text_document.uri, completion),
                )
            ],
        )

    def _accept_command(self, uri: str, completion: Completion) -> types.Command:
        """The item's command: the editor runs it when the user accepts the suggestion."""
        document = self.server.workspace.text_documents.get(uri)
        completion_id = self.feedback.offer(
            Offered(
                model=completion.model,
                template=completion.template,
                source=completion.source,
                latency_ms=completion.elapsed_ms,
                length=len(completion.text),
                lines=completion.text.count("\n") + 1,
                language=(document.language_id if document else None) or "",
                text=completion.text,
            )
        )
        return types.Command(
            title="tinyarms: completion accepted",
            command=FEEDBACK,
            arguments=[{"id": completion_id, "event": "accepted"}],
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

    def record_feedback(self, args: FeedbackArgs) -> dict[str, Any]:
        """`tinyarms.autocomplete.feedback {id, event, accepted_length?}` -> {recorded, reason?}."""
        try:
            return self.feedback.record(args.id, args.event, args.accepted_length)
        except ValueError as exc:
            raise JsonRpcInvalidParams(f"{FEEDBACK}: {exc}") from None

    async def crash_model(self) -> dict[str, Any]:
        """Test only: make the model child segfault, as a native crash would."""
        if self.model is None:
            return {"crashed": False}
        try:
            await self.model.crash()
        except LocalModelError as exc:
            return {"crashed": True, "error": str(exc)}
        return {"crashed": False}


def _end_of(change: types.TextDocumentContentChangePartial, encoding: Any) -> types.Position:
    """Where the cursor is after `change`, in the client's position units."""
    start, text = change.range.start, change.text
    if "\n" not in text:
        return types.Position(start.line, start.character + _units(text, encoding))
    return types.Position(start.line + text.count("\n"), _units(text.rsplit("\n", 1)[1], encoding))


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


def _fs(uri: str) -> Path | None:
    path = _path(uri) if uri.startswith("file:") else None
    return Path(path) if path else None


def _path(uri: str) -> str | None:
    from pygls.uris import to_fs_path

    try:
        return to_fs_path(uri)
    except Exception:
        return None
