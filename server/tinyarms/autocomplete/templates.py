"""Fill-in-the-middle templates as data, and their detection from a model's vocabulary.

A template turns (text before, current line before the cursor, text after) into a list
of prompt segments: `("text", s)` is tokenized as plain text (so code that happens to
contain `<|fim_prefix|>` stays text), `("special", s)` as one control token.

Layout (as llama.vim does): the text of the current line before the cursor goes last,
after the middle token, so typing only appends tokens and the KV cache stays valid.

Detection order: the `tiers.NAME.template` override, then the FIM token ids in the GGUF
metadata (`tokenizer.ggml.fim_pre_token_id`, `..fim_suf..`, `..fim_mid..`), then known
token strings in the vocabulary, else prefix-only (both embedded models are prefix-only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import attrs

Segment = tuple[str, str]  # ("text" | "special", string)


@attrs.frozen
class FimTemplate:
    name: str
    prefix: str = ""  # control token before the prefix ("" when the model has none)
    suffix: str = ""
    middle: str = ""
    order: Literal["psm", "spm", "prefix-only"] = "psm"
    stop: tuple[str, ...] = ()  # control tokens that end the middle
    file_sep: str = ""  # repository-level context (Qwen2.5-Coder, StarCoder2)
    repo_name: str = ""

    @property
    def uses_suffix(self) -> bool:
        return self.order != "prefix-only"

    def identifying_tokens(self) -> tuple[str, ...]:
        return tuple(t for t in (self.prefix, self.suffix, self.middle, self.file_sep) if t)

    def segments(
        self,
        before: str,
        line_prefix: str,
        after: str,
        *,
        path: str | None = None,
        repo: str | None = None,
        extra_files: Sequence[tuple[str, str]] = (),
        context_text: str = "",
    ) -> list[Segment]:
        """The prompt. `before` ends at the start of the cursor's line; `after` starts at
        the cursor (the rest of the line, then the lines below).

        Other files' context goes first, where it stays in the KV cache: as `extra_files`
        (path, content) in the model's repository format when it has one, else as
        `context_text` (path-labelled comment blocks) at the start of the prefix."""
        lead: list[Segment] = [("text", context_text)] if context_text and not self.file_sep else []
        if self.order == "prefix-only":
            return [*lead, ("text", before + line_prefix)]
        head: list[Segment] = []
        if self.file_sep and (repo or extra_files or path):
            if self.repo_name and repo:
                head += [("special", self.repo_name), ("text", repo + "\n")]
            for extra_path, content in extra_files:
                head += [("special", self.file_sep), ("text", f"{extra_path}\n{content}\n")]
            if path:
                head += [("special", self.file_sep), ("text", path + "\n")]
        if self.order == "spm":
            return [
                *head,
                ("special", self.suffix),
                ("text", after),
                ("special", self.prefix),
                *lead,
                ("text", before + line_prefix),
            ]
        return [
            *head,
            ("special", self.prefix),
            *lead,
            ("text", before),
            ("special", self.suffix),
            ("text", after),
            ("special", self.middle),
            ("text", line_prefix),
        ]


PREFIX_ONLY = FimTemplate("prefix-only", order="prefix-only")

TEMPLATES: dict[str, FimTemplate] = {
    t.name: t
    for t in (  # fmt: skip
        FimTemplate("qwen2.5-coder", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", file_sep="<|file_sep|>",
                    repo_name="<|repo_name|>", stop=("<|endoftext|>", "<|file_sep|>", "<|fim_pad|>", "<|repo_name|>")),
        FimTemplate("starcoder2", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", file_sep="<file_sep>",
                    repo_name="<repo_name>", stop=("<|endoftext|>", "<file_sep>")),
        FimTemplate("santacoder", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", stop=("<|endoftext|>",)),
        FimTemplate(
            "deepseek-coder",
            "<｜fim▁begin｜>",
            "<｜fim▁hole｜>",
            "<｜fim▁end｜>",
            stop=("<|EOT|>", "<｜end▁of▁sentence｜>"),
        ),
        FimTemplate(
            "codegemma",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
            stop=("<|file_separator|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
            file_sep="<|file_separator|>",
        ),
        FimTemplate("codestral", "[PREFIX]", "[SUFFIX]", "", order="spm", stop=("</s>",)),
        PREFIX_ONLY,
    )
}


class UnknownTemplate(ValueError):
    pass


def by_name(name: str) -> FimTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UnknownTemplate(f"unknown FIM template '{name}'; known: {', '.join(TEMPLATES)}") from None


def probe_strings() -> list[str]:
    """Every token string whose presence in a vocabulary identifies a template."""
    return sorted({token for t in TEMPLATES.values() for token in t.identifying_tokens()})


def detect(fim_tokens: dict[str, str], has_token: Callable[[str], bool], override: str | None = None) -> FimTemplate:
    """The template for a model. `fim_tokens` are the texts of the GGUF's FIM token ids
    ({"pre", "suf", "mid"}, any missing); `has_token(s)` says whether `s` is a single
    special token in the vocabulary."""
    if override:
        return by_name(override)
    # Templates that every identifying token of which the model has, most specific first.
    candidates = [
        t for t in TEMPLATES.values() if t.identifying_tokens() and all(has_token(s) for s in t.identifying_tokens())
    ]
    candidates.sort(key=lambda t: len(t.identifying_tokens()), reverse=True)
    pre, suf, mid = fim_tokens.get("pre"), fim_tokens.get("suf"), fim_tokens.get("mid")
    if pre and suf:
        for t in candidates or TEMPLATES.values():
            if (t.prefix, t.suffix) == (pre, suf) and (mid or "") == t.middle:
                return t
        # FIM ids in the metadata that no built-in template names: use them as they are.
        return FimTemplate("gguf-fim", pre, suf, mid or "", order="psm" if mid else "spm")
    return candidates[0] if candidates else PREFIX_ONLY
