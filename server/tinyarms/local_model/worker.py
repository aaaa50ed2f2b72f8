"""The model child process: `python -m tinyarms.local_model.worker`.

One llama.cpp model per process. Requests arrive as JSON lines on stdin, replies leave
as JSON lines on a private copy of stdout (fd 1 itself is pointed at stderr, so nothing
native can corrupt the reply stream). A reader thread takes requests off stdin so a
`cancel` reaches a running generation, which stops between tokens (or between prompt
chunks while a long prompt is evaluated; the evaluated part stays in the KV cache).

Requests (`{"id": N, "op": ...}`):
- `load` {path, n_ctx, n_threads}: load the model -> {"ok", "n_ctx", "n_vocab", "add_bos"}
- `ping`: the IPC round trip, nothing else
- `metadata` {probe: [strings]}: GGUF metadata, FIM token texts and which probe strings are one
  special token in the vocabulary (FIM template detection)
- `tokenize` {text, special}: token ids
- `complete` {segments, max_tokens, stop, stop_at_newline}: greedy prefix completion. `segments`
  is `[["text"|"special", str], ...]`. The longest common token prefix with the previous
  prompt stays in the KV cache. Streams {"id", "piece"} and ends with {"id", "done", ...}.
- `chat` {messages, max_tokens, temperature, stop, json_schema?}: the model's chat template (a plain
  transcript for base models without one); streams
  {"id", "piece", "logprob"} and ends with {"id", "done", "usage"}. With `json_schema` every
  token is sampled through llama.cpp's grammar built from that schema (JSON-schema -> GBNF),
  so the answer is always JSON of that shape (the agent's tool calls on local tiers).
- `score` {prompt, candidates}: evaluate the prompt once -> {"logits": [the logit of each
  candidate's first token]} (the router's LLM stage).
- `prefill` {segments, chunk}: evaluate a prompt into the KV cache, no generation, at low
  priority: `chunk` tokens at a time, stopping as soon as another request waits (a
  keystroke always goes first) -> {"evaluated", "prompt_tokens", "preempted"}.
- `cancel` {target}: stop request `target`.
- `crash`: a real segfault, only with TINYARMS_ALLOW_CRASH=1 (tests of crash isolation).
"""

from __future__ import annotations

import codecs
import ctypes
import json
import logging
import os
import queue
import sys
import threading
import time
from typing import Any, BinaryIO

log = logging.getLogger("tinyarms.local_model.worker")

# For models whose GGUF carries no chat template (base models such as the embedded Gemma 3
# 270M): a Q/A transcript, which such models continue far better than role labels (measured
# by hand: "User:/Assistant:" made it echo the code), stopped where it starts another entry.
PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}Q: {{ m['content'] }}\n"
    "{% else %}A: {{ m['content'] }}\n\n{% endif %}{% endfor %}A:"
)
PLAIN_CHAT_STOPS = ["\nQ:", "\nA:", "\nB:"]

PROMPT_CHUNK = 64  # tokens evaluated between cancel checks (0.4-1 s cold; smaller chunks cost throughput)
TOKEN_CACHE_MIN_CHARS = 512  # segments this long are tokenized once (see Worker.segment_tokens)
TOKEN_CACHE_SIZE = 16



def common_prefix(cached: list[int], tokens: list[int]) -> int:
    """How many leading tokens the KV cache already holds: those are not evaluated again."""
    keep = 0
    for a, b in zip(cached, tokens, strict=False):
        if a != b:
            break
        keep += 1
    return keep

class Cancelled(Exception):
    pass


class Worker:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.out_lock = threading.Lock()
        self.requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.cancelled: set[int] = set()
        self.llm: Any = None
        self.vocab: Any = None
        self._sorted_pieces: tuple[list[bytes], list[int]] | None = None
        self._heal_cache: dict[bytes, Any] = {}
        self._token_cache: dict[tuple[str, str], list[int]] = {}

    # -- transport -------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False).encode() + b"\n"
        with self.out_lock:
            self.out.write(data)
            self.out.flush()

    def send_text(self, rid: int, text: str, logprob: float | None) -> None:
        """A piece of a chat answer; empty pieces are not sent."""
        if text:
            self.send({"id": rid, "piece": text, "logprob": logprob})

    def read_stdin(self) -> None:
        for line in sys.stdin.buffer:
            try:
                request = json.loads(line)
            except ValueError:
                log.error("bad request line: %r", line[:200])
                continue
            if request.get("op") == "cancel":
                self.cancelled.add(int(request.get("target", -1)))
            elif request.get("op") == "ping":
                self.send({"id": request.get("id"), "done": True})  # answered here: the pure IPC cost
            else:
                self.requests.put(request)
        self.requests.put(None)

    def run(self) -> None:
        threading.Thread(target=self.read_stdin, daemon=True).start()
        while (request := self.requests.get()) is not None:
            rid = request.get("id")
            try:
                handler = getattr(self, "op_" + str(request.get("op")), None)
                if handler is None:
                    raise ValueError(f"unknown op {request.get('op')!r}")
                reply = handler(request)
                self.send({"id": rid, "done": True, **(reply or {})})
            except Cancelled:
                self.send({"id": rid, "done": True, "cancelled": True})
            except Exception as exc:
                log.exception("request %s failed", request.get("op"))
                self.send({"id": rid, "done": True, "error": f"{type(exc).__name__}: {exc}"})
            finally:
                self.cancelled.discard(rid)

    def check(self, rid: int) -> None:
        if rid in self.cancelled:
            raise Cancelled

    # -- model -----------------------------------------------------------------------

    def op_load(self, request: dict[str, Any]) -> dict[str, Any]:
        import llama_cpp

        if self.llm is None:
            started = time.perf_counter()
            self.llm = llama_cpp.Llama(
                model_path=request["path"],
                n_ctx=int(request.get("n_ctx") or 2048),
                n_threads=int(request.get("n_threads") or 2),
                n_batch=PROMPT_CHUNK,
                verbose=False,
            )
            self.vocab = self.llm._model.vocab
            self.tokens_starting_with(b"_")  # builds the sorted vocabulary once, off the keystroke path
            log.info("loaded %s in %.2fs", request["path"], time.perf_counter() - started)
        return {
            "n_ctx": self.llm.n_ctx(),
            "n_vocab": self.llm.n_vocab(),
            "add_bos": bool(self.llm._model.add_bos_token()),
        }

    def op_metadata(self, request: dict[str, Any]) -> dict[str, Any]:
        model = self.llm._model
        fim = {}
        for name, token in (
            ("pre", model.token_prefix()),
            ("suf", model.token_suffix()),
            ("mid", model.token_middle()),
        ):
            if token is not None and token >= 0:
                fim[name] = model.token_get_text(token)
        probes = {}
        for text in request.get("probe", []):
            tokens = self.llm.tokenize(text.encode(), add_bos=False, special=True)
            probes[text] = len(tokens) == 1
        return {"metadata": dict(self.llm.metadata), "fim_tokens": fim, "probes": probes}

    def op_tokenize(self, request: dict[str, Any]) -> dict[str, Any]:
        text = str(request.get("text", "")).encode()
        return {"tokens": self.llm.tokenize(text, add_bos=False, special=bool(request.get("special")))}

    def op_score(self, request: dict[str, Any]) -> dict[str, Any]:
        firsts = [self.llm.tokenize(str(c).encode(), add_bos=False, special=False)[0] for c in request["candidates"]]
        self.prepare(int(request["id"]), self.tokens_of([["text", str(request["prompt"])]]))
        logits = self.logits()
        return {"logits": [float(logits[token]) for token in firsts]}

    def op_crash(self, request: dict[str, Any]) -> None:
        if os.environ.get("TINYARMS_ALLOW_CRASH") != "1":
            raise ValueError("crash is only allowed with TINYARMS_ALLOW_CRASH=1")
        ctypes.string_at(0)  # SIGSEGV: a real native crash

    # -- decoding --------------------------------------------------------------------

    def tokens_of(self, segments: list[list[str]]) -> list[int]:
        tokens: list[int] = []
        if self.llm._model.add_bos_token():
            tokens.append(self.llm.token_bos())
        for kind, text in segments:
            tokens += self.segment_tokens(kind, text)
        return tokens

    def segment_tokens(self, kind: str, text: str) -> list[int]:
        """A segment's tokens; a long one is remembered. Gemma 3's tokenizer (262k tokens)
        takes ~7.5 ms for 2200 characters: the other files' context block, the same
        segment at every keystroke, cost that much each time before it was remembered."""
        key = (kind, text)
        found = self._token_cache.pop(key, None)  # popped and put back: the newest goes last
        if found is None:
            found = self.llm.tokenize(text.encode(), add_bos=False, special=kind == "special")
        if len(text) >= TOKEN_CACHE_MIN_CHARS:
            self._token_cache[key] = found
            while len(self._token_cache) > TOKEN_CACHE_SIZE:
                del self._token_cache[next(iter(self._token_cache))]
        return found  # the caller copies it (tokens_of extends its own list)

    def prepare(self, rid: int, tokens: list[int]) -> int:
        """Evaluate `tokens`, reusing the longest common prefix in the KV cache; returns how
        many tokens were evaluated. Leaves the logits of the last token ready."""
        llm = self.llm
        limit = llm.n_ctx() - 1
        if len(tokens) > limit:
            raise ValueError(f"prompt of {len(tokens)} tokens does not fit the context ({limit})")
        cached = llm.input_ids[: llm.n_tokens].tolist()
        keep = common_prefix(cached, tokens)
        keep = min(keep, len(tokens) - 1)  # always evaluate one token, for fresh logits
        llm.n_tokens = keep
        log.debug("prepare %d: %d tokens, %d cached, %d kept", rid, len(tokens), len(cached), keep)
        for start in range(keep, len(tokens), PROMPT_CHUNK):
            self.check(rid)
            llm.eval(tokens[start : start + PROMPT_CHUNK])
        return len(tokens) - keep

    def logits(self) -> Any:
        import llama_cpp
        import numpy as np

        pointer = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),))

    def piece(self, token: int) -> bytes:
        import llama_cpp

        buffer = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, 64, 0, False)
        return buffer.raw[: max(n, 0)]

    def tokens_starting_with(self, prefix: bytes) -> Any:
        """Ids of every token whose text starts with `prefix` (for token healing)."""
        import bisect

        import numpy as np

        if prefix in self._heal_cache:
            return self._heal_cache[prefix]
        if self._sorted_pieces is None:
            pairs = sorted((self.piece(token), token) for token in range(self.llm.n_vocab()))
            self._sorted_pieces = ([p for p, _ in pairs], [t for _, t in pairs])
        pieces, ids = self._sorted_pieces
        lo = bisect.bisect_left(pieces, prefix)
        hi = bisect.bisect_left(pieces, prefix + b"\xff" * 8)
        result = np.array(ids[lo:hi], dtype=np.int64)
        if len(self._heal_cache) > 256:
            self._heal_cache.clear()
        self._heal_cache[prefix] = result
        return result

    def is_end(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def op_complete(self, request: dict[str, Any]) -> dict[str, Any]:
        rid = int(request["id"])
        started = time.perf_counter()
        tokens = self.tokens_of(request["segments"])
        # Token healing: a prompt that ends inside a word ends inside a token ("os.path.jo"
        # is "jo", not the start of "join"). Drop that last token and make the first
        # generated token start with its text.
        healed = b""
        if request.get("heal", True) and len(tokens) > 1:
            last = self.piece(tokens[-1])
            if last[-1:].isalnum() or last[-1:] == b"_":
                healed, tokens = last, tokens[:-1]
        evaluated = self.prepare(rid, tokens)
        prompt_ms = (time.perf_counter() - started) * 1000
        max_tokens = int(request.get("max_tokens") or 32)
        stops = [s for s in request.get("stop") or [] if s]
        stop_at_newline = bool(request.get("stop_at_newline", True))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = ""
        reason = "max_tokens"
        generated = 0
        while generated < max_tokens:
            self.check(rid)
            logits = self.logits()
            if healed:
                allowed = self.tokens_starting_with(healed)
                token = int(allowed[int(logits[allowed].argmax())])
            else:
                token = int(logits.argmax())
            if self.is_end(token):
                reason = "end"
                break
            generated += 1
            piece = decoder.decode(self.piece(token)[len(healed) :])
            healed = b""
            if stop_at_newline and "\n" in piece:
                piece = piece.split("\n", 1)[0]
                reason = "newline"
            text += piece
            hit = next((s for s in stops if s in text), None)
            if hit is not None:
                cut = text.index(hit)
                piece = piece[: max(0, len(piece) - (len(text) - cut))]
                text = text[:cut]
                reason = "stop"
            if piece:
                self.send({"id": rid, "piece": piece})
            if reason in ("newline", "stop"):
                break
            self.llm.eval([token])
        return {
            "text": text,
            "stop_reason": reason,
            "prompt_tokens": len(tokens),
            "evaluated_tokens": evaluated,
            "completion_tokens": generated,
            "prompt_ms": round(prompt_ms, 2),
            "total_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    def op_prefill(self, request: dict[str, Any]) -> dict[str, Any]:
        """A `complete` prompt evaluated ahead. Its last token is left out: `complete` may
        heal it (drop it and regenerate), and then the cached prefix still matches."""
        rid = int(request["id"])
        tokens = self.tokens_of(request["segments"])[:-1]
        chunk = max(1, int(request.get("chunk") or 8))
        llm = self.llm
        if len(tokens) < 2 or len(tokens) > llm.n_ctx() - 1:
            return {"evaluated": 0, "prompt_tokens": len(tokens), "preempted": False}
        cached = llm.input_ids[: llm.n_tokens].tolist()
        keep = common_prefix(cached, tokens)
        llm.n_tokens = min(keep, len(tokens))
        evaluated = 0
        for start in range(llm.n_tokens, len(tokens), chunk):
            if not self.requests.empty() or rid in self.cancelled:
                return {"evaluated": evaluated, "prompt_tokens": len(tokens), "preempted": True}
            piece = tokens[start : start + chunk]
            llm.eval(piece)
            evaluated += len(piece)
        return {"evaluated": evaluated, "prompt_tokens": len(tokens), "preempted": False}

    def op_chat(self, request: dict[str, Any]) -> dict[str, Any]:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        rid = int(request["id"])
        llm = self.llm
        template = llm.metadata.get("tokenizer.chat_template")
        plain = not template
        if plain:  # a base model (the embedded Gemma 3 270M): a plain transcript it can continue
            template = PLAIN_CHAT_TEMPLATE
        model = llm._model
        bos = model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
        eos = model.token_get_text(llm.token_eos()) if llm.token_eos() >= 0 else ""
        prompt = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)(messages=request["messages"]).prompt
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        if model.add_bos_token() and (not tokens or tokens[0] != llm.token_bos()):
            tokens.insert(0, llm.token_bos())
        self.prepare(rid, tokens)
        temperature = float(request.get("temperature") or 0.0)
        grammar = Grammar(self.vocab, request["json_schema"]) if request.get("json_schema") else None
        try:
            return self._generate(rid, request, tokens, plain, temperature, grammar)
        finally:
            if grammar is not None:
                grammar.close()

    def _generate(
        self, rid: int, request: dict[str, Any], tokens: list[int], plain: bool, temperature: float,
        grammar: Grammar | None,
    ) -> dict[str, Any]:  # fmt: skip
        import numpy as np

        llm = self.llm
        stops = [s for s in request.get("stop") or [] if s]
        if plain and grammar is None:
            stops += PLAIN_CHAT_STOPS
        rng = np.random.default_rng(int(request.get("seed", 0)))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = ""
        sent = 0  # characters of `text` already streamed
        generated = 0
        while generated < int(request.get("max_tokens") or 256):
            self.check(rid)
            logits = self.logits().astype(np.float64)
            shifted = logits - logits.max()
            log_z = np.log(np.exp(shifted).sum())
            if grammar is not None:
                token = grammar.pick(shifted)
            elif temperature > 0:
                probs = np.exp(shifted / temperature)
                token = int(rng.choice(len(probs), p=probs / probs.sum()))
            else:
                token = int(shifted.argmax())
            if self.is_end(token):
                break
            generated += 1
            piece = decoder.decode(self.piece(token))
            if plain and not text.strip():
                piece = piece.lstrip()  # the transcript's "A:" is followed by a space
            text += piece
            logprob = float(shifted[token] - log_z)
            hits = [text.find(stop) for stop in stops if stop in text]
            if hits:
                self.send_text(rid, text[sent : min(hits)], logprob)
                return {"usage": [len(tokens), generated]}
            # Hold back a tail that may be the start of a stop string, so it never reaches the user.
            partial = (k for stop in stops for k in range(1, len(stop)) if text.endswith(stop[:k]))
            safe = len(text) - max(partial, default=0)
            if safe > sent:
                self.send_text(rid, text[sent:safe], logprob)
                sent = safe
            llm.eval([token])
        self.send_text(rid, text[sent:], None)
        return {"usage": [len(tokens), generated]}


class Grammar:
    """Greedy decoding through a llama.cpp grammar built from a JSON schema.

    Checking the grammar against the whole vocabulary every token is slow on a model with a
    large vocabulary (Gemma 3: 262k tokens), so, as llama.cpp's own sampler does, the best
    token is checked alone first, then the best 64, 4096, and only then all of them."""

    def __init__(self, vocab: Any, json_schema: str) -> None:
        import llama_cpp
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = LlamaGrammar.from_json_schema(json_schema, verbose=False)
        self.sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not self.sampler:
            raise ValueError("llama.cpp could not build a grammar from the JSON schema")

    def pick(self, logits: Any) -> int:
        import llama_cpp
        import numpy as np

        size = len(logits)
        for count in (1, 64, 4096, size):
            count = min(count, size)
            best = np.argpartition(-logits, count - 1)[:count] if count < size else np.arange(size)
            data = (llama_cpp.llama_token_data * count)()
            for slot, token in enumerate(best.tolist()):
                data[slot].id, data[slot].logit, data[slot].p = token, float(logits[token]), 0.0
            array = llama_cpp.llama_token_data_array(data=data, size=count, selected=-1, sorted=False)
            llama_cpp.llama_sampler_apply(self.sampler, ctypes.byref(array))
            allowed = [(data[i].logit, data[i].id) for i in range(count) if data[i].logit != float("-inf")]
            if allowed:
                token = max(allowed)[1]
                llama_cpp.llama_sampler_accept(self.sampler, token)
                return int(token)
        raise ValueError("the grammar allows no token here")

    def close(self) -> None:
        import llama_cpp

        if self.sampler:
            llama_cpp.llama_sampler_free(self.sampler)
            self.sampler = None


def main() -> int:
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("TINYARMS_WORKER_DEBUG") == "1" else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s worker[%(process)d]: %(message)s",
    )
    # Replies go to a private duplicate of stdout; fd 1 becomes stderr so native prints
    # from llama.cpp can never interleave with the reply stream.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    Worker(out).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
