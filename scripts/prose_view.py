"""An experiment for scripts/dev_router.py (`--prose`, `--prose-embedding`, `--language-prose`), NOT
used by the router: the words of a request, with its pasted code and quoted text folded to one
placeholder each.

Measured (issue 16, design 7; switch design, augment 1; dev set / grouped 5-fold CV on training
rows), it lost: classifiers on this view 0.902 / 0.933 against 0.908 / 0.941 as written;
encoders on it with n-grams on the raw text 0.904 / 0.936; the language guess on the words
outside code moved 4 dev requests to "not English" and changed nothing (0.908). A request's
code is often its subject ("what does Box<dyn Error> mean" folds to "what does code mean", which
reads as chat) and a quoted error is the best sign of `fix`. The idea, kept for the record:

People paste code and error messages into a request ("why does python say \"UnboundLocalError:
local variable 'count' referenced before assignment\" here", "make this more pythonic? for i
in range(len(items)): print(i, items[i])"). A sentence encoder averages over every token, so a
long paste outweighs the few words that say what is asked: an error message reads as `fix` even
when the request says "not asking for a fix, just want to understand". The classifiers (both
encoders and the n-gram view) would read the request with each such span folded to the word
`code`, trained on their own rows folded the same way.

What counts as a span: a fenced block or a `backtick` span; a "double-quoted" run of 3+ words or
with code punctuation; and a run of tokens that carry code punctuation (`(){}[];=<>`, `->`, `::`,
`!=`) — with the plain words sandwiched between two such tokens. Paths and @-mentions keep
their place as the word `file`. A request that would keep fewer than two words of its own is read as
written (a bare snippet is all there is to go on).
"""

from __future__ import annotations

import re

PLACEHOLDER = "code"
_FENCE = re.compile(r"```.*?(```|$)", re.DOTALL)
_BACKTICK = re.compile(r"`[^`]+`")
_QUOTED = re.compile(r"\"([^\"]{2,})\"|“([^”]{2,})”")
_CODE_PUNCT = re.compile(r"[(){}\[\];=<>]|->|::|!=|&&|\|\|")
# @src/x.ts, @UserService, ./a/b, /usr/lib, src/app/main.py, utils.ts ("and/or", "async/await": words).
_MENTION = re.compile(
    r"^@[\w./\\-]+$|^\.{0,2}/[\w./\\-]+$|^[\w.-]*[/\\][\w./\\-]*\.\w+$"
    r"|^[\w-]+\.(py|ts|tsx|js|jsx|rs|go|rb|java|c|cpp|h|md|json|ya?ml|toml)$"
)
_WORD = re.compile(r"[^\W\d_]{2,}")


def _is_code_quote(inner: str) -> bool:
    return len(inner.split()) >= 3 or bool(_CODE_PUNCT.search(inner))


def prose(text: str, *, keep_places: bool = True) -> str:
    """`text` with code spans folded to `code` and paths to `file` (see the module docstring);
    `keep_places=False` drops them instead."""
    out = _FENCE.sub(f" {PLACEHOLDER} ", text)
    out = _BACKTICK.sub(f" {PLACEHOLDER} ", out)
    out = _QUOTED.sub(lambda m: f" {PLACEHOLDER} " if _is_code_quote(m.group(1) or m.group(2)) else m.group(0), out)
    tokens = out.split()
    kinds = [
        "code" if _CODE_PUNCT.search(t) else "file" if _MENTION.match(t.rstrip(",.:;?!")) else "word" for t in tokens
    ]
    # A plain word between two code tokens is part of the paste ("for i in range(len(x)): print(i)").
    codes = [i for i, k in enumerate(kinds) if k == "code"]
    for a, b in zip(codes, codes[1:], strict=False):
        if b - a <= 6:
            for i in range(a + 1, b):
                if kinds[i] == "word":
                    kinds[i] = "code"
    words: list[str] = []
    for token, kind in zip(tokens, kinds, strict=True):
        if kind == "word":
            words.append(token)
        else:
            folded = PLACEHOLDER if kind == "code" else "file"
            if not words or words[-1] != folded:
                words.append(folded)
    own = [w for w in words if w not in (PLACEHOLDER, "file")]
    if sum(1 for w in own if _WORD.search(w)) < 2:
        return text
    return " ".join(words if keep_places else own)
