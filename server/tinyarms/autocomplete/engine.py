"""The completion engine: prompt -> local model -> cleaned text, within a time budget.

A fresh multi-token answer does not fit in 100 ms on 2 cores, so most keystrokes are
answered without new generation:

- typed-through: every generation is remembered under the text around the cursor; when
  the user types the first characters of what was generated, the rest answers at once;
- speculation: a generation that did not finish within `max_latency_ms` answers with what
  it has and keeps running to the end of the line, into that same cache;
- a request the cache cannot answer cancels the running generation (only one runs, the
  model is single-threaded) and starts a new one, which reuses the KV cache of the old
  prompt (see prompt.py) and is cut at the deadline;
- other files' context (context.py) is a block at the start of the prompt that changes
  rarely, so it stays in the KV cache; `prefill` evaluates a prompt ahead (no generation)
  when a file is opened, its block changes or the cursor settles at a new place, at low
  priority: the child stops it between small prompt chunks as soon as a keystroke's
  request arrives. A cold 600-character window is about 170 tokens, ~0.7 s at the
  ~255 tokens/s one thread evaluates here: it never fits a 100 ms keystroke, but it fits
  the pause of a user who moved there and reads before typing. A place whose prompt
  shares all but WARM_TAIL_CHARS with what the model evaluated last is not prefilled
  (that tail costs one keystroke's worth).

Nothing slow (network, embeddings, SQLite) is on this path; a remote autocomplete tier
(remote.py) is asked where the local model would be, within `remote_wait_ms`, and closed
with the generation it feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import attrs

from tinyarms.autocomplete import postprocess, templates
from tinyarms.autocomplete.context import ContextBlock
from tinyarms.autocomplete.prompt import COLD_PREFIX_CHARS, Prompt, build
from tinyarms.autocomplete.templates import FimTemplate
from tinyarms.local_model import CompletionResult, LocalModel, LocalModelError

if TYPE_CHECKING:
    from tinyarms.autocomplete.remote import RemoteFim

log = logging.getLogger(__name__)

MARGIN_MS = 10  # left for JSON-RPC and the handler around the engine (measured 2.5 ms p50, 8 ms p95;
# with 6 the replay's p95 was 103.9 ms on a quiet machine: the answers cut at the deadline)
CACHE_KEYS = 64
MAX_TOKENS = 24  # one line; a block gets MAX_TOKENS_BLOCK
MAX_TOKENS_BLOCK = 64
# Tokens the child evaluates between checks for a keystroke. Measured on one thread (a
# 460-token prompt): 8 a chunk runs at 155 tokens/s (52 ms a chunk), 16 at 203 (79 ms), 32
# at 237 (135 ms), 64 at 263-282 (~235 ms). A keystroke at the place being prefilled reuses
# what the chunk evaluated, so only one elsewhere loses it.
PREFILL_CHUNK = 32
WARM_TAIL_CHARS = 48  # a prompt new past this many characters is prefilled (~15 tokens, ~60 ms to evaluate)
# A prefill pre-empted by something else than a keystroke (a block's token count: opening
# five files counts five blocks) goes on, up to this often; each resume goes on from where
# the last one stopped.
MAX_PREFILL_RESUMES = 64


@attrs.frozen
class CompletionRequest:
    lines: list[str]  # the document, split at "\n"
    line: int  # 0-based, clamped
    column: int  # code points, clamped
    doc: str = ""  # the document's URI (or a path)
    path: str | None = None
    context: ContextBlock | None = None  # other files, built off the keystroke path


@attrs.frozen
class Answering:
    """Yielded by a remote tier's stream before its first piece (remote.py): that tier's model,
    not the local one, answers this generation; completions and acceptance records name it."""

    model: str


@attrs.frozen
class Completion:
    text: str
    elapsed_ms: float
    model: str
    template: str
    source: str  # cache | speculation | model | not-ready | error | cancelled


class Generation:
    """One running (or finished) generation and the text it has produced so far."""

    def __init__(self, key: int, line_prefix: str, context: str | None = None) -> None:
        self.key = key  # the text around the cursor
        self.line_prefix = line_prefix
        self.context = context  # the other files' block it was generated with
        self.text = ""
        self.done = False
        self.reason = ""
        self.stats: dict[str, Any] = {}
        self.model: str | None = None  # the remote tier's model when it answered (else the engine's)
        self.task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def append(self, piece: str) -> None:
        self.text += piece
        self._changed.set()

    def finish(self, reason: str) -> None:
        if not self.done:
            self.done, self.reason = True, reason
        self._changed.set()

    def remainder(self, line_prefix: str) -> str | None:
        """What this generation still offers after the user typed `line_prefix`, or None."""
        full = self.line_prefix + self.text
        if line_prefix.startswith(self.line_prefix) and full.startswith(line_prefix):
            return full[len(line_prefix) :]
        return None

    def follows(self, line_prefix: str) -> bool:
        """Whether the user's line is consistent with this generation (ahead of it or not)."""
        full = self.line_prefix + self.text
        return line_prefix.startswith(self.line_prefix) and (
            full.startswith(line_prefix) or line_prefix.startswith(full)
        )

    async def changed(self, timeout: float) -> None:
        self._changed.clear()
        if self.done:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def cancel(self) -> None:
        if self.task and not self.task.done():
            self.task.cancel()


class CompletionEngine:
    def __init__(
        self,
        model: LocalModel,
        template: FimTemplate,
        *,
        model_name: str,
        max_latency_ms: int | None = 100,
        multiline: str | bool = "auto",
    ) -> None:
        self.model = model
        self.template = template
        self.model_name = model_name
        self.max_latency_ms = max_latency_ms  # None: wait for the whole line (CLI, evaluations)
        self.multiline = multiline_mode(multiline)
        self.cache: OrderedDict[int, list[Generation]] = OrderedDict()
        self.current: Generation | None = None
        self._starts: dict[str, int] = {}  # document -> first line of its last prompt
        self.last_stats: dict[str, Any] = {}
        self.counts: Counter[str] = Counter()  # how generations ended, and answer sources
        self.on_change: Callable[[], None] | None = None  # after each generation or prefill ends
        self._prefill: asyncio.Task[None] | None = None
        self._prefilled: int | None = None  # hash of the last prompt sent ahead
        self._evaluated = ""  # the text of the prompt the model's KV cache holds (as far as known)
        self._cursor_lines: dict[str, int] = {}  # document -> cursor line of its last prompt
        self.remote: RemoteFim | None = None  # a remote tier asked first (remote.py), this model its fallback
        self.last_prefill: dict[str, Any] = {}  # {evaluated, prompt_tokens, preempted} of the last one

    @property
    def running(self) -> bool:
        return self.current is not None and not self.current.done

    def _answer(self, text: str, started: float, source: str, model: str | None = None) -> Completion:
        self.counts["answer_" + source] += 1
        elapsed = (time.perf_counter() - started) * 1000
        return Completion(text, round(elapsed, 2), model or self.model_name, self.template.name, source)

    def _prompt(self, request: CompletionRequest) -> Prompt:
        # Latency-bound: keep the previous prompt start (warm KV cache) or start small.
        sticky = self._starts.get(request.doc)
        if self.max_latency_ms is None:
            prompt = build(request.lines, request.line, request.column)
        else:
            prompt = build(
                request.lines,
                request.line,
                request.column,
                cold_chars=COLD_PREFIX_CHARS,
                sticky_start=sticky,
                sticky_line=self._cursor_lines.get(request.doc),
            )
        self._starts[request.doc] = prompt.first_line
        self._cursor_lines[request.doc] = request.line
        for table in (self._starts, self._cursor_lines):
            if len(table) > CACHE_KEYS:
                table.pop(next(iter(table)))
        return prompt

    def window(self, doc: str) -> tuple[int, int] | None:
        """(first line, cursor line) of the last prompt in `doc`: where its KV cache is warm."""
        if doc not in self._starts or doc not in self._cursor_lines:
            return None
        return self._starts[doc], self._cursor_lines[doc]

    def _segments(self, request: CompletionRequest, prompt: Prompt) -> list[tuple[str, str]]:
        block = request.context
        # The file's own imports go before a window that starts below them (see ContextBlock).
        header = block.header if block and prompt.first_line > block.header_end else ""
        return self.template.segments(
            _clean_text(header + prompt.before),
            _clean_text(prompt.line_prefix),
            _clean_text(prompt.after),
            path=block.current if block else request.path,
            extra_files=[(label, _clean_text(text)) for label, text in block.files] if block else (),
            context_text=_clean_text(block.comments) if block else "",
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        started = time.perf_counter()
        if not self.model.ready:
            return self._answer("", started, "not-ready")
        prompt = self._prompt(request)
        if _looks_binary(prompt.before + prompt.line_prefix):
            log.warning("autocomplete: %s looks binary (control bytes near the cursor); no completion", request.doc)
            return self._answer("", started, "binary")
        multiline = postprocess.allows_multiline(prompt, self.multiline)
        context_key = request.context.key if request.context else None
        key = hash((request.doc, prompt.before, prompt.line_suffix, prompt.below))
        budget_ms = 1e9 if self.max_latency_ms is None else max(self.max_latency_ms - MARGIN_MS, 5)
        deadline = started + budget_ms / 1000

        hit = self._lookup(key, prompt.line_prefix, context_key)
        if hit is not None:
            generation, rest = hit
            if rest:
                text = postprocess.clean(rest, prompt, multiline=multiline)
                if not text:
                    self.counts["empty_cleaned"] += 1
                return self._answer(text, started, "cache", generation.model)
            if generation.done:
                self.counts["empty_ended"] += 1
                return self._answer("", started, "cache", generation.model)  # the model says the line ends here
            # The user caught up with a live generation: wait for its next tokens.
            return await self._wait(generation, prompt, multiline, deadline, started, "speculation")

        current = self.current
        if current is not None and not current.done and current.key == key and current.follows(prompt.line_prefix):
            # The user typed past what the running generation has produced so far, but
            # consistently with it: keep it (its prompt is evaluated, a new one is not).
            return await self._wait(current, prompt, multiline, deadline, started, "speculation")
        if current is not None:
            current.cancel()
        generation = Generation(key, prompt.line_prefix, context_key)
        self._remember(generation)
        segments = self._segments(request, prompt)
        self._prefilled = hash(repr(segments))
        generation.task = asyncio.create_task(self._run(generation, segments, multiline, request))
        self._evaluating(segments, done=False)
        self.current = generation
        return await self._wait(generation, prompt, multiline, deadline, started, "model")

    async def _wait(
        self, generation: Generation, prompt: Prompt, multiline: bool, deadline: float, started: float, source: str
    ) -> Completion:
        """Answer once the line is complete or at the deadline, with what there is."""
        try:
            while not generation.done and (left := deadline - time.perf_counter()) > 0:
                rest = generation.remainder(prompt.line_prefix) or ""
                if "\n" in rest and not multiline:
                    break
                await generation.changed(left)
        except asyncio.CancelledError:
            generation.cancel()  # $/cancelRequest: free the model for the next request
            raise
        rest = generation.remainder(prompt.line_prefix) or ""
        if generation.reason == "error":
            source = "error"
        text = postprocess.clean(rest, prompt, multiline=multiline)
        if not text:  # why nothing is shown: no token yet, the model ended the line, or cleaned away
            self.counts["empty_" + ("cleaned" if rest.strip() else "ended" if generation.done else "deadline")] += 1
        return self._answer(text, started, source, generation.model)

    def _fim(
        self, segments: list[tuple[str, str]], multiline: bool, request: CompletionRequest
    ) -> AsyncIterator[str | CompletionResult | Answering]:
        """Where a generation's text comes from: the local model, or the remote tier first."""

        def local() -> AsyncIterator[str | CompletionResult]:
            stop = list(self.template.stop) + (["\n\n"] if multiline else [])
            max_tokens = MAX_TOKENS_BLOCK if multiline else MAX_TOKENS
            return self.model.complete(segments, max_tokens=max_tokens, stop=stop, stop_at_newline=not multiline)

        return self.remote.stream(request, local, multiline=multiline) if self.remote else local()

    async def _run(
        self, generation: Generation, segments: list[tuple[str, str]], multiline: bool, request: CompletionRequest
    ) -> None:
        try:
            async for item in self._fim(segments, multiline, request):
                if isinstance(item, Answering):
                    generation.model = item.model
                elif isinstance(item, CompletionResult):
                    generation.stats = item.stats
                    self.last_stats = item.stats
                    if item.stop_reason != "cancelled":
                        self._evaluating(segments, done=True)
                    generation.finish(item.stop_reason)
                else:
                    generation.append(item)
        except asyncio.CancelledError:
            generation.finish("cancelled")
        except LocalModelError as exc:
            log.warning("autocomplete: generation failed: %s", exc)
            generation.finish("error")
        finally:
            generation.finish("cancelled")
            if self.current is generation:
                self.current = None
            self.counts["generation_" + generation.reason] += 1
            log.debug("generation %s: %r %s", generation.reason, generation.text[:40], generation.stats)
            if self.on_change:
                self.on_change()

    def _evaluating(self, segments: list[tuple[str, str]], *, done: bool) -> None:
        """Track what the KV cache holds: all of `segments` once evaluated; while (or if
        not all) evaluated, only the part it shares with what was there before."""
        text = _prompt_text(segments)
        self._evaluated = text if done else self._evaluated[: _common_prefix(self._evaluated, text)]

    def prefill(self, request: CompletionRequest, *, skip_warm: bool = False) -> bool:
        """Evaluate the prompt at `request` ahead, without generating, at low priority:
        never while a generation runs, and the child drops it for any keystroke. The next
        prompt here starts where this one does, so it reuses what was evaluated.
        `skip_warm`: not when all but WARM_TAIL_CHARS of it is in the KV cache already."""
        if not self.model.ready:
            return False
        if self.running:
            self.counts["prefill_deferred"] += 1  # the caller may ask again once it ends
            return False
        prompt = self._prompt(request)
        if _looks_binary(prompt.before + prompt.line_prefix):
            return False
        segments = self._segments(request, prompt)
        fingerprint = hash(repr(segments))
        if fingerprint == self._prefilled:
            return False  # the KV cache holds it already, or it is being evaluated
        text = _prompt_text(segments)
        if skip_warm and len(text) - _common_prefix(self._evaluated, text) <= WARM_TAIL_CHARS:
            self.counts["prefill_skipped_warm"] += 1
            return False
        if self._prefill and not self._prefill.done():
            # An older prefill (the file opened before this one): this one is what the user
            # looks at now. Dropping the new one instead left the file opened last cold.
            self._prefill.cancel()
            self.counts["prefill_superseded"] += 1
        self._prefilled = fingerprint
        self._evaluating(segments, done=False)
        self._prefill = asyncio.create_task(self._run_prefill(segments))
        self.counts["prefill_started"] += 1
        return True

    async def _run_prefill(self, segments: list[tuple[str, str]]) -> None:
        fingerprint = self._prefilled
        try:
            reply = await self.model.prefill(segments, chunk=PREFILL_CHUNK)
            # Pre-empted by a request that was not a keystroke (a block's token count, the
            # router's score): go on from where it stopped. A keystroke's generation, or a
            # newer prefill, owns the KV cache now instead.
            for _ in range(MAX_PREFILL_RESUMES):
                if not (reply.get("preempted") and not self.running and self._prefilled == fingerprint):
                    break
                self.counts["prefill_resumed"] += 1
                reply = await self.model.prefill(segments, chunk=PREFILL_CHUNK)
        except LocalModelError as exc:
            log.info("autocomplete: prefill failed: %s", exc)
            self.counts["prefill_error"] += 1
            return
        outcome = "preempted" if reply.get("preempted") else "done"
        self.counts["prefill_" + outcome] += 1
        if reply.get("preempted"):
            self._prefilled = None  # not all of it is in the cache: a later prefill may finish it
        elif not self.running:  # a generation started meanwhile owns the cache now
            self._evaluating(segments, done=True)
        self.last_prefill = {k: reply.get(k) for k in ("evaluated", "prompt_tokens", "preempted")}
        log.debug("prefill %s: %s", outcome, reply)
        if self.on_change:
            self.on_change()

    def _lookup(self, key: int, line_prefix: str, context: str | None) -> tuple[Generation, str] | None:
        """The newest generation that still offers text; else one the user caught up with.
        One made with another context block counts only once the user typed into it: typing
        a suggestion through stays instant when the block is rebuilt meanwhile, but asking
        again at the same place with new context asks the model again."""
        live = ended = None
        for generation in reversed(self.cache.get(key, [])):
            if generation.context != context and len(line_prefix) <= len(generation.line_prefix):
                continue
            rest = generation.remainder(line_prefix)
            if rest is None:
                continue
            if rest:
                return generation, rest
            if not generation.done:
                live = live or generation
            elif generation.reason in ("newline", "end", "stop"):
                ended = ended or generation
        chosen = live or ended
        return (chosen, "") if chosen else None

    def _remember(self, generation: Generation) -> None:
        entries = self.cache.setdefault(generation.key, [])
        self.cache.move_to_end(generation.key)
        entries.append(generation)
        del entries[:-8]
        while len(self.cache) > CACHE_KEYS:
            self.cache.popitem(last=False)

    def clear(self) -> None:
        if self.current:
            self.current.cancel()
        if self._prefill:
            self._prefill.cancel()
        self.cache.clear()


def multiline_mode(value: str | bool) -> str:
    """`roles.autocomplete.multiline`; the old bool form: true is "auto", false "never"."""
    if isinstance(value, bool):
        return "auto" if value else "never"
    if value not in postprocess.MULTILINE_MODES:
        raise ValueError(f"multiline must be one of {', '.join(postprocess.MULTILINE_MODES)}, not {value!r}")
    return value


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    controls = sum(1 for char in text if char < " " and char not in "\t\n\r\x0c")
    return controls > len(text) // 20


def _prompt_text(segments: list[tuple[str, str]]) -> str:
    return "".join(text for _, text in segments)


def _common_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def _clean_text(text: str) -> str:
    """Text the model can take: lone surrogates (broken UTF-16 from a client) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


async def detect_template(model: LocalModel, override: str | None = None) -> FimTemplate:
    """The FIM template of a started model: the override, else from its metadata and vocabulary."""
    if override:
        return templates.by_name(override)
    reply = await model.metadata(templates.probe_strings())
    probes = reply.get("probes", {})
    return templates.detect(reply.get("fim_tokens", {}), lambda s: bool(probes.get(s)))
