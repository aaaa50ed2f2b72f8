"""The cheap first stage: slash commands, then a few high-precision keyword patterns.

A slash command (`/explain ...`) names the route outright. Keyword patterns decide only
when exactly one route's patterns match; anything ambiguous goes on to the embeddings.
The patterns are deliberately narrow (an exception name, "docstring", "unit tests"):
each one was checked against the training set, where a false hit costs accuracy.
"""

from __future__ import annotations

import re

from attrs import define

# Aliases for slash commands besides the route names themselves.
SLASH_ALIASES = {
    "gen": "generate",
    "write": "generate",
    "tests": "test",
    "doc": "document",
    "docs": "document",
    "debug": "fix",
    "bug": "fix",
}
CHAT_COMMANDS = ("chat", "ask")  # `/chat ...`: explicitly no route, the fallback role

_SLASH = re.compile(r"^/([A-Za-z][\w-]*)(?:\s+|$)(.*)", re.DOTALL)

KEYWORDS: dict[str, list[str]] = {
    "fix": [
        r"\b[A-Z]\w*(Error|Exception)\b",  # TypeError, NullPointerException
        r"\btraceback\b",
        r"\bseg(mentation )?fault",
        r"\bstack ?trace\b",
        r"\bcore dumped\b",
        r"\bdeadlock",
        r"\bfix (this|the|my|a) (bug|error|crash|issue)",
    ],
    "test": [
        r"\b(unit|integration|e2e|end-to-end|regression|snapshot|property[- ]based|parametri[sz]ed) ?tests?\b",
        r"\b(pytest|jest|mocha|junit|rspec|unittest|vitest|hypothesis) (tests?|cases?|specs?)\b",
        r"\b(write|add|create|generate) (some |a few |more )?(tests|test cases)\b",
        r"\btest coverage\b",
    ],
    "document": [
        r"\bdocstrings?\b",
        r"\b(jsdoc|javadoc|rustdoc|doxygen)\b",
        r"\breadme\b",
        r"\bchangelog\b",
        r"\brelease notes\b",
        r"\b(add|write) (inline |more )?comments\b",
    ],
    "review": [
        r"\bcode review\b",
        r"\breview (my|this|the) (code|pr|pull request|diff|changes|commit)\b",
        r"\bsecurity (review|audit)\b",
        r"\bcode smells?\b",
    ],
}


@define
class RuleMatch:
    route: str | None  # None with explicit=True: `/chat`, no route
    rest: str  # the request without the slash command
    explicit: bool  # a slash command (True) or a keyword pattern (False)
    reason: str


class Rules:
    def __init__(self, routes: list[str], keywords: dict[str, list[str]] | None = None) -> None:
        self.routes = set(routes)
        patterns = KEYWORDS if keywords is None else keywords
        self.keywords = {
            route: [re.compile(p, re.IGNORECASE) if not p.startswith(r"\b[A-Z]") else re.compile(p) for p in ps]
            for route, ps in patterns.items()
            if route in self.routes
        }

    def slash(self, text: str) -> RuleMatch | None:
        match = _SLASH.match(text)
        if not match:
            return None
        command, rest = match.group(1).lower(), match.group(2).strip()
        if command in CHAT_COMMANDS:
            return RuleMatch(None, rest, True, f"/{command} asks the chat role directly")
        route = command if command in self.routes else SLASH_ALIASES.get(command)
        if route not in self.routes:
            return None  # not ours (a path like /usr/bin, or an unknown command): route by content
        return RuleMatch(route, rest, True, f"/{command} names the {route} route")

    def keyword(self, text: str) -> RuleMatch | None:
        hits: dict[str, str] = {}
        for route, patterns in self.keywords.items():
            for pattern in patterns:
                found = pattern.search(text)
                if found:
                    hits[route] = found.group(0)
                    break
        if len(hits) != 1:
            return None
        ((route, word),) = hits.items()
        return RuleMatch(route, text, False, f"the request mentions '{word}', a {route} keyword")
