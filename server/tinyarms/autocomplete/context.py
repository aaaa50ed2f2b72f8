"""Project context for autocomplete: what the other files say, gathered off the keystroke path.

A 270M model completing `headers.` cannot know `parse_header` exists unless the prompt
says so. Two bounded sources, as the best local peers do (llama.vim's ring buffer, Tabby's
declaration snippets):

- a ring buffer of chunks (`context_chunk_lines` lines) of recently opened, edited and
  saved files, newest last; a chunk that shares 90% of its lines with an older one
  replaces it (the same function seen twice is one chunk);
- for Python, the definitions the current file imports from the workspace
  (`from pkg.mod import name`, `import pkg.mod`, relative imports): resolved to files
  inside the workspace folders only (symlinks resolved first; a path that lands outside
  is never read), taken from the editor's buffer when the file is open, parsed with
  `ast` (never imported, never executed); the signature and first docstring line of each
  imported name, or of a module's top-level definitions.

The block is capped at `context_tokens` (estimated at 2 characters a token: Gemma 3 averages
3.5-4 on ordinary code, but numbers cost a token a digit, and digit-heavy code measured 2.0:
754 real tokens for a block estimated at 505 with 3 characters a token). Definitions come
first (rendered last, nearest the file), then the newest chunks. The block is the start of
every prompt of the file, so it stays in the KV cache while the user types and moves
around: it depends on the file as a whole, never on the cursor's place, and is chosen
again only when what it was chosen from changes (see `Project`).
"""

from __future__ import annotations

import ast
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import attrs

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 256_000  # ast.parse of 256 KB takes ~30 ms; larger files are not read for definitions
SIMILAR = 0.9  # chunks sharing this share of lines are one chunk
MAX_CHUNK_SOURCE_LINES = 100_000  # a bigger file (a log, generated code) gives no chunks
MAX_NAMES = 24  # imported names rendered per file
MAX_MODULE_DEFS = 12  # definitions shown for `import pkg.mod`
MAX_CLASS_METHODS = 8
FOLLOW_DEPTH = 2  # `from pkg import name` where pkg/__init__.py re-exports it: follow this far
COMMENTS = {
    ".py": "#",
    ".pyi": "#",
    ".rb": "#",
    ".sh": "#",
    ".toml": "#",
    ".yaml": "#",
    ".yml": "#",
    ".r": "#",
    ".lua": "--",
    ".sql": "--",
    ".hs": "--",
}
DEFAULT_COMMENT = "//"  # C, C++, Go, Rust, Java, JavaScript, TypeScript, C#, Kotlin, Swift...


def comment_for(path: str | None) -> str:
    return COMMENTS.get(Path(path or "").suffix.lower(), DEFAULT_COMMENT)


@attrs.frozen
class Chunk:
    uri: str  # the document it came from (excluded from that document's own block)
    label: str  # its path, relative to the workspace folder when inside one
    start: int  # first line
    text: str


@attrs.frozen
class ContextBlock:
    """What goes before the current file: (label, text) files in prompt order, and the
    same as path-labelled comment blocks for models without repository tokens."""

    files: tuple[tuple[str, str], ...]
    current: str  # the current file's label
    comments: str  # "# Path: a.py\n# ...\n# Path: current.py\n" (empty when there is no context)
    chars: int
    # The current file's own import statements (as written, up to line `header_end`): put
    # before a window that starts below them, so `name(` is read next to `from x import name`.
    header: str = ""
    header_end: int = -1
    tokens: int | None = None  # counted by the model's tokenizer (`Project.measured`), else unknown

    @property
    def tokens_estimate(self) -> int:
        return estimate_tokens(self.comments + self.header)

    @property
    def key(self) -> str:
        """What the prompt takes from the block (cached answers are only valid with it)."""
        return self.comments + "\0" + self.header


def _similarity(a: list[str], b: list[str]) -> float:
    """The share of lines two chunks have in common (llama.vim's measure)."""
    if not a or not b:
        return 0.0
    common = len(set(a) & set(b))
    return 2 * common / (len(set(a)) + len(set(b)))


class RingBuffer:
    """The newest chunks of recently used files; adding one is O(size)."""

    def __init__(self, size: int = 16, chunk_lines: int = 32) -> None:
        self.size = size
        self.chunk_lines = chunk_lines
        self.chunks: list[Chunk] = []
        self.version = 0  # bumped on every change

    def add(self, uri: str, label: str, lines: list[str], around: int) -> bool:
        """A chunk of `lines` centred on line `around`; False when it added nothing new."""
        if self.size <= 0 or not lines or len(lines) > MAX_CHUNK_SOURCE_LINES:
            return False
        start = max(0, min(around - self.chunk_lines // 2, len(lines) - self.chunk_lines))
        body = lines[start : start + self.chunk_lines]
        while body and not body[-1].strip():
            body = body[:-1]
        meaningful = [line.strip() for line in body if line.strip()]
        if len(meaningful) < 3:
            return False
        text = "\n".join(line[:400] for line in body)
        if "\x00" in text or sum(ch < " " and ch not in "\t\n\r\x0c" for ch in text) > len(text) // 20:
            return False  # binary: nothing a model can use
        if any(c.uri == uri and c.text == text for c in self.chunks):
            return False
        kept = [c for c in self.chunks if _similarity(meaningful, _meaningful(c.text)) < SIMILAR]
        kept.append(Chunk(uri, label, start, text))
        self.chunks = kept[-self.size :]
        self.version += 1
        return True

    def drop(self, uri: str) -> None:
        before = len(self.chunks)
        self.chunks = [c for c in self.chunks if c.uri != uri]
        if len(self.chunks) != before:
            self.version += 1

    def others(self, uri: str) -> list[Chunk]:
        """Chunks of every file but `uri`, newest last."""
        return [c for c in self.chunks if c.uri != uri]


def _meaningful(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


# -- Python imports ---------------------------------------------------------------------


@attrs.frozen
class Import:
    module: str  # dotted, without the leading dots
    level: int  # 0 absolute, 1 for `from . import`, ...
    names: tuple[str, ...]  # () for `import pkg.mod`
    bindings: tuple[str, ...] = ()  # what the file calls each name (`as x`), or the module


_IMPORT_LINE = re.compile(r"^\s*(from\s+[.\w]+\s+import\b|import\s+\w)")


def imports_of(source: str) -> list[Import]:
    """The imports of a Python file. A file being typed rarely parses: then only its
    import statements are parsed (a parenthesised list may span lines)."""
    try:
        if len(source) > MAX_FILE_BYTES:
            raise ValueError("too big to parse whole")
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        tree = ast.parse(_import_lines(source))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            aliases = [alias for alias in node.names if alias.name != "*"]
            names = tuple(alias.name for alias in aliases)
            bindings = tuple(alias.asname or alias.name for alias in aliases)
            found.append(Import(node.module or "", node.level, names, bindings))
        elif isinstance(node, ast.Import):
            found += [Import(a.name, 0, (), (a.asname or a.name.split(".")[-1],)) for a in node.names]
    return found


def _import_lines(source: str) -> str:
    statements: list[str] = []
    lines = source.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not _IMPORT_LINE.match(line):
            continue
        statement = line.strip()
        while "(" in statement and ")" not in statement and index < len(lines) and len(statement) < 4000:
            statement += " " + lines[index].strip()
            index += 1
        try:
            ast.parse(statement)
        except (SyntaxError, ValueError):
            continue
        statements.append(statement)
    return "\n".join(statements)


class Definitions:
    """Signatures and docstring lines of workspace modules, cached by file state."""

    def __init__(self, roots: Iterable[Path], read_open: Callable[[Path], str | None]) -> None:
        self.roots = [root.resolve() for root in roots]
        self.read_open = read_open  # an open editor buffer's text, else None
        self._cache: dict[Path, tuple[object, dict[str, str], list[str]]] = {}

    def inside(self, path: Path) -> Path | None:
        """`path` with symlinks resolved, if it is a file inside a workspace folder."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return None
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            return None
        return real if real.is_file() else None

    def resolve(self, module: str, level: int, importer: Path) -> Path | None:
        parts = [p for p in module.split(".") if p]
        if level:
            base = importer.parent
            for _ in range(level - 1):
                base = base.parent
            bases = [base]
        else:
            bases = [importer.parent, *self.roots, *(root / "src" for root in self.roots)]
        for base in bases:
            target = base.joinpath(*parts) if parts else base
            for candidate in (target.with_name(target.name + ".py") if parts else None, target / "__init__.py"):
                if candidate is not None and (found := self.inside(candidate)):
                    return found
        return None

    def summary(self, path: Path) -> tuple[dict[str, str], list[str]]:
        """({name: rendered definition}, names in file order) of a module's top level."""
        text = self.read_open(path)
        try:
            stat = path.stat()
        except OSError:
            return {}, []
        state: object = ("buffer", hash(text)) if text is not None else (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached and cached[0] == state:
            return cached[1], cached[2]
        if text is None:
            if stat.st_size > MAX_FILE_BYTES:
                return {}, []
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                return {}, []
        rendered: dict[str, str] = {}
        order: list[str] = []
        if len(text) <= MAX_FILE_BYTES:
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError, RecursionError):
                tree = None
            if tree is not None:
                lines = text.split("\n")
                for node in tree.body:
                    for name, value in _render(node, lines):
                        if name not in rendered:
                            order.append(name)
                        rendered[name] = value
                    if isinstance(node, ast.ImportFrom):
                        for alias in node.names:  # re-exports: followed on demand
                            rendered.setdefault(
                                "\0from:" + (alias.asname or alias.name),
                                f"{node.level}:{node.module or ''}:{alias.name}",
                            )
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[path] = (state, rendered, order)
        return rendered, order

    def lookup(self, path: Path, name: str, depth: int = 0) -> str | None:
        rendered, _ = self.summary(path)
        if name in rendered:
            return rendered[name]
        reexport = rendered.get("\0from:" + name)
        if reexport and depth < FOLLOW_DEPTH:
            level, module, original = reexport.split(":", 2)
            target = self.resolve(module, int(level), path)
            if target is not None and target != path:
                return self.lookup(target, original, depth + 1)
        return None

    def for_file(self, source: str, path: Path) -> list[tuple[Path, list[str]]]:
        """(file, rendered definitions) for what `source` (the file at `path`) imports, each
        file's most relevant first (see `ranked`), files in order of their best one."""
        out: dict[Path, list[str]] = {}
        for file, text in self.ranked(source, path):
            out.setdefault(file, []).append(text)
        return list(out.items())

    def ranked(self, source: str, path: Path) -> list[tuple[Path, str]]:
        """(file, rendered definition) for what `source` imports, most relevant first:
        names the file uses more often, then names imported but not used yet, then the
        other members of an imported module (at most MAX_NAMES a file, MAX_MODULE_DEFS of
        them unused). In the stdlib's `email`/`asyncio`/`http`/`httpx`/`attr` files,
        first-come order left the definition a line used out of a 512-token block 4 times in 5."""
        return self.ranked_all(source, path)[0]

    def ranked_all(
        self, source: str, path: Path, imports: Iterable[Import] | None = None
    ) -> tuple[list[tuple[Path, str]], set[str]]:
        """`ranked`, and every definition text the imports offer (before the caps).
        `imports`: `imports_of(source)`, when the caller has them already."""
        usage = Usage(source)
        scored: dict[str, tuple[tuple[int, int], int, Path]] = {}  # text -> (score, order, file)

        def offer(file: Path, text: str, score: tuple[int, int]) -> None:
            if text not in scored or scored[text][0] < score:
                scored[text] = (score, scored[text][1] if text in scored else len(scored), file)

        def module(file: Path, binding: str) -> None:
            rendered, order = self.summary(file)
            for name in order:
                uses = usage.attributes[(binding, name)]
                if not name.startswith("_") or uses:
                    offer(file, rendered[name], (uses, 0))

        for item in imports_of(source) if imports is None else imports:
            module_file = self.resolve(item.module, item.level, path)
            if not item.names:
                if module_file is not None and module_file != path:
                    module(module_file, item.bindings[0] if item.bindings else item.module.split(".")[-1])
                continue
            for name, binding in zip(item.names, item.bindings or item.names, strict=True):
                submodule = self.resolve(f"{item.module}.{name}" if item.module else name, item.level, path)
                if submodule is not None and submodule != path and submodule != module_file:
                    module(submodule, binding)  # `from pkg import mod [as binding]`
                elif module_file is not None and module_file != path:
                    text = self.lookup(module_file, name)
                    if text:
                        offer(module_file, text, (usage.names[binding], 1))
        best = sorted(scored.items(), key=lambda item: (tuple(-x for x in item[1][0]), item[1][1]))
        per_file: Counter[Path] = Counter()
        result = []
        for text, (score, _, file) in best:
            per_file[file] += 1
            if per_file[file] <= MAX_NAMES and (score[0] or per_file[file] <= MAX_MODULE_DEFS):
                result.append((file, text))
        return result, set(scored)


class Usage:
    """How often a file uses each name (`names`) and attribute (`attributes`: `alias.name`),
    import statements left out."""

    def __init__(self, source: str) -> None:
        self.names: Counter[str] = Counter()
        self.attributes: Counter[tuple[str, str]] = Counter()
        in_import = False
        for line in source.split("\n"):
            if in_import or _IMPORT_LINE.match(line):
                in_import = "(" in line and ")" not in line if not in_import else ")" not in line
                continue
            self.names.update(_NAME.findall(line))
            self.attributes.update(_ATTRIBUTE.findall(line))


_NAME = re.compile(r"(?<![.\w])[A-Za-z_]\w*")
_ATTRIBUTE = re.compile(r"(?=(?<![\w])([A-Za-z_]\w*)\.([A-Za-z_]\w*))")


def _render(node: ast.stmt, lines: list[str]) -> list[tuple[str, str]]:
    """(name, text) for a top-level definition: signature, docstring line, `...`."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [(node.name, _function(node, lines))]
    if isinstance(node, ast.ClassDef):
        head = _signature(node, lines)
        parts = [head]
        doc = _doc_line(node)
        if doc:
            parts.append(f'    """{doc}"""')
        methods = [
            n
            for n in node.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and (not n.name.startswith("_") or n.name == "__init__")
        ]
        parts += [_signature(m, lines) + " ..." for m in methods[:MAX_CLASS_METHODS]]  # one line a method
        if len(parts) == 1:
            parts.append("    ...")
        return [(node.name, "\n".join(parts))]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            return []
        end = node.end_lineno or node.lineno
        text = "\n".join(lines[node.lineno - 1 : end])
        if end - node.lineno > 2 or len(text) > 200:
            text = lines[node.lineno - 1].split("=", 1)[0].rstrip() + " = ..."
        return [(name, text) for name in names]
    return []


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: list[str]) -> str:
    """The `def ...:` / `class ...:` lines as written (no decorators, no body)."""
    first = node.lineno - 1
    body = node.body[0] if node.body else None
    # The body starts at its first statement's first decorator, if it has any.
    body_line = min([body.lineno] + [d.lineno for d in getattr(body, "decorator_list", [])]) - 1 if body else first
    end = max(first, body_line - 1) if body_line > first else first
    text = "\n".join(line.rstrip() for line in lines[first : end + 1])
    if body_line == first:  # `def f(): return 1`: keep what is before the body
        text = text[: text.find(":", text.find(")") if ")" in text else 0) + 1] or text
    return _one_line(text)


def _one_line(signature: str) -> str:
    """A signature written over several lines, on one (its indentation kept): half the
    tokens of httpx's one-parameter-a-line style, so more definitions fit the cap."""
    if "\n" not in signature:
        return signature
    indent = signature[: len(signature) - len(signature.lstrip())]
    parts = [part.strip() for part in signature.split("\n") if part.strip() and not part.strip().startswith("#")]
    joined = " ".join(parts)
    joined = re.sub(r"([(\[{]) ", r"\1", joined)
    joined = re.sub(r",? ([)\]}])", r"\1", joined)
    return indent + joined


def _doc_line(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str:
    doc = ast.get_docstring(node, clean=True) or ""
    first = doc.strip().split("\n", 1)[0].strip()
    return first.replace('"""', "'''")[:160]


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str:
    """Signature as written (a method keeps its indentation), docstring line, `...`."""
    line = lines[node.lineno - 1]
    body_indent = line[: len(line) - len(line.lstrip())] + "    "
    parts = [_signature(node, lines)]
    doc = _doc_line(node)
    if doc:
        parts.append(f'{body_indent}"""{doc}"""')
    parts.append(f"{body_indent}...")
    return "\n".join(parts)


# -- the block ------------------------------------------------------------------------------


@attrs.frozen
class Part:
    """A file's block with what it was chosen from: kept for as long as those hold (the
    same other files' chunks, the same imports and room, none of its definitions edited
    since). Typing in the file and moving around in it change none of them."""

    chunks: tuple[Chunk, ...]  # the ring buffer's chunks of other files, when chosen
    imports: tuple[Import, ...]
    room: int  # estimated tokens it was chosen for
    files: tuple[tuple[str, str], ...]  # (label, text) in prompt order
    definitions: frozenset[str]  # the definition texts it holds


class Project:
    """The ring buffer and the definitions of one workspace, and the block of each file.

    A changed block is a cold prompt: ~500 tokens, ~2 s on one thread. So a file's block
    depends on the file as a whole (the definitions it uses most), not on where the cursor
    is, and it is chosen again only when what it was chosen from changes (`Part`).
    Measured on the typing replay (scripts/bench_autocomplete.py --only context --sections
    replay): a block re-ranked around each new place changed at most of them and left 45%
    of keystrokes empty with context; this one leaves 7%. Re-ranking put the line's name in
    the block for 4 more cross-file holes in 100 (`definition_in_block_share` 0.718, against
    0.681 file-wide)."""

    def __init__(self, *, size: int = 16, chunk_lines: int = 32, max_tokens: int = 512) -> None:
        self.ring = RingBuffer(size, chunk_lines)
        self.max_tokens = max_tokens
        # Real tokens per estimated one, from the model's tokenizer (see `measured`), for
        # each document and the last one measured (a new document starts from it):
        # 0.66-1.38 on stdlib and httpx code with Gemma 3, 1.17 on `helper_12_3`-style
        # names, and it differs between tokenizers. One ratio for all documents moved at
        # each switch between two files and changed both blocks (measured in the replay).
        self.token_ratio = 1.0
        self.ratios: dict[str, float] = {}
        self.roots: list[Path] = []
        self._definitions: Definitions | None = None
        self.blocks: dict[str, ContextBlock | None] = {}
        self._parts: dict[str, Part] = {}  # document -> what its block was chosen from
        self._counted: dict[str, int] = {}  # block text -> the model's token count

    def configure(self, *, size: int, chunk_lines: int, max_tokens: int) -> None:
        self.ring.size, self.ring.chunk_lines, self.max_tokens = size, chunk_lines, max_tokens
        self.ring.chunks = self.ring.chunks[-size:] if size > 0 else []

    def set_roots(self, roots: list[Path]) -> None:
        """The workspace folders: imports resolve only to files inside them."""
        resolved = [root.resolve() for root in roots]
        if resolved != self.roots:
            self.roots = resolved
            self._definitions = None

    def label(self, path: Path | None, uri: str) -> str:
        return label_of(path, self.roots, uri.rsplit("/", 1)[-1])

    def forget(self, uri: str) -> None:
        """A closed document: its block goes."""
        self.blocks.pop(uri, None)
        self._parts.pop(uri, None)
        self.ratios.pop(uri, None)

    def build(self, uri: str, path: Path | None, source: str, open_texts: dict[Path, str]) -> ContextBlock | None:
        """The block for `uri` now (CPU-bound: parses imported files; call off the loop).
        `open_texts`: the editor's buffers by resolved path, read instead of the disk.
        Without workspace folders, the file's own folder is the workspace."""
        roots = self.roots or ([path.parent.resolve()] if path else [])
        if self._definitions is None or self._definitions.roots != roots:
            self._definitions = Definitions(roots, lambda p: None)
        definitions = self._definitions
        definitions.read_open = open_texts.get
        imports: tuple[Import, ...] = ()
        ranked: list[tuple[str, str]] = []  # (label, text), the most used in the file first
        offered: set[str] = set()  # every definition the imports offer
        if path is not None and path.suffix in (".py", ".pyi"):
            try:
                imports = tuple(imports_of(source))
                found, offered = definitions.ranked_all(source, path, imports)
                ranked = [(self.label(file, ""), text) for file, text in found]
            except (SyntaxError, ValueError, RecursionError, OSError) as exc:
                log.debug("autocomplete: imports of %s not read: %s", path, exc)
        comment = comment_for(str(path) if path else uri)
        current = self.label(path, uri)
        budget = int(self.max_tokens / self.ratios.get(uri, self.token_ratio))  # in estimated tokens
        header, header_end = import_header(source, budget // 4) if ranked else ("", -1)
        room = max(0, budget - estimate_tokens(header) - estimate_tokens(f"{comment} Path: {current}\n"))
        chunks = tuple(self.ring.others(uri))
        part = self._parts.get(uri)
        if not (
            part is not None
            and (part.chunks, part.imports, part.room) == (chunks, imports, room)
            and part.definitions <= offered  # none edited (or no longer imported) since
        ):
            if part is not None:
                log.debug(
                    "autocomplete: block of %s chosen again: chunks %s, imports %s, room %d -> %d, edited %d",
                    uri,
                    "same" if part.chunks == chunks else "changed",
                    "same" if part.imports == imports else "changed",
                    part.room,
                    room,
                    len(part.definitions - offered),
                )
            part = choose(ranked, list(chunks), room, comment, imports)
            self._parts[uri] = part
            if len(self._parts) > 256:
                del self._parts[next(iter(self._parts))]
        block = render(current, part.files, comment)
        return attrs.evolve(block, header=header, header_end=header_end) if block and header else block

    async def measured(
        self,
        uri: str,
        build: Callable[[], Awaitable[ContextBlock | None]],
        count: Callable[[str], Awaitable[int]] | None,
    ) -> ContextBlock | None:
        """`uri`'s block from `build()`, its real size (`count`: the model's tokenizer)
        within the cap: a block over it, or far from its estimate, recalibrates the
        document's token ratio and is built again at once (at most twice). A block seen
        before is not counted again."""
        block = await build()
        for attempt in range(3):
            if block is None or count is None:
                return block
            text = block.comments + block.header
            real = self._counted.get(text)
            if real is None:
                real = self._counted[text] = await count(text)
                if len(self._counted) > 256:
                    self._counted.pop(next(iter(self._counted)))
            # Recalibrated only when over the cap or off by more than RECALIBRATE_BAND: a ratio
            # that moved with every count changed the room, and so the block, at every rebuild
            # (measured on email/headerregistry.py: 3 rebuilds at one place, 3 different blocks).
            ratio, used = real / max(1, block.tokens_estimate), self.ratios.get(uri, self.token_ratio)
            recalibrate = real > self.max_tokens or abs(ratio - used) > RECALIBRATE_BAND * used
            if recalibrate:
                self.token_ratio = used = min(3.0, max(0.5, ratio))
            self.ratios[uri] = used  # its own from now on, even if another document's moves the default
            if len(self.ratios) > 256:
                del self.ratios[next(iter(self.ratios))]
            block = attrs.evolve(block, tokens=real)
            if not recalibrate or attempt == 2:
                return block
            block = await build()  # now, not at the next rebuild: that would change a warm block
        return block


RECALIBRATE_BAND = 0.15  # the token ratio moves only when a count is this far off (or over the cap)


def choose(
    definitions: list[tuple[str, str]], chunks: list[Chunk], room: int, comment: str, imports: tuple[Import, ...] = ()
) -> Part:
    """A block's contents within `room`: as many whole `definitions` (most relevant first)
    as fit, then the newest chunks; in prompt order the oldest chunk comes first and the
    most relevant definition last, nearest the file (a small model copies most from what
    is nearest)."""
    chosen, left = select_definitions(definitions, room, comment)
    files = select_chunks(chunks, left, comment) + group(chosen)
    return Part(tuple(chunks), imports, room, files, frozenset(text for _, text in chosen))


def select_definitions(
    definitions: list[tuple[str, str]], room: int, comment: str
) -> tuple[list[tuple[str, str]], int]:
    """The whole definitions (label, text), most relevant first, that fit `room`, and the room left."""
    chosen: list[tuple[str, str]] = []
    labels: set[str] = set()
    for label, text in definitions:
        size = _cost(label, text, comment, label not in labels)
        if size <= room:
            chosen.append((label, text))
            labels.add(label)
            room -= size
    return chosen, room


def select_chunks(chunks: list[Chunk], room: int, comment: str) -> tuple[tuple[str, str], ...]:
    """(label, text) of the newest chunks that fit `room` (the newest possibly cut), oldest first."""
    kept: list[tuple[str, str]] = []
    for chunk in reversed(chunks):
        text = _fit(chunk.text, room - estimate_tokens(f"{comment} Path: {chunk.label}\n"), comment)
        if not text:
            break
        kept.append((chunk.label, text))
        room -= _cost(chunk.label, text, comment, True)
    return tuple(reversed(kept))


def group(definitions: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Definitions (label, text), most relevant first, as files: in order of their best
    one, each file's texts most relevant last; both reversed, so the best is nearest the file."""
    by_label: dict[str, list[str]] = {}
    for label, text in definitions:
        by_label.setdefault(label, []).append(text)
    return tuple((label, "\n".join(reversed(texts))) for label, texts in reversed(by_label.items()))


def _cost(label: str, text: str, comment: str, new_file: bool) -> int:
    """Estimated tokens of `text` as comment lines, with its `Path:` line when it starts a file."""
    head = f"{comment} Path: {label}\n" if new_file else ""
    return estimate_tokens(head + "".join(f"{comment} {line}\n" for line in text.split("\n")))


def render(current: str, files: tuple[tuple[str, str], ...], comment: str) -> ContextBlock | None:
    """The block of `files` (label, text) in prompt order, as path-labelled comment blocks
    ending with the current file's `Path:` line; None without files."""
    if not files:
        return None
    commented = "".join(
        f"{comment} Path: {label}\n" + "".join(f"{comment} {line}".rstrip() + "\n" for line in text.split("\n"))
        for label, text in files
    )
    commented += f"{comment} Path: {current}\n"
    return ContextBlock(files, current, commented, len(commented))


MAX_HEADER_LINES = 24


def import_header(source: str, max_tokens: int) -> tuple[str, int]:
    """(the file's top-level import statements as written, the line of the last one), at
    most MAX_HEADER_LINES lines and `max_tokens`, from the top of the file down to its first
    definition; a statement that does not fit is left out."""
    kept: list[str] = []
    budget = max_tokens
    last = -1
    lines = source.split("\n")
    index = 0
    while index < len(lines) and len(kept) < MAX_HEADER_LINES:
        line = lines[index]
        if line.startswith(("def ", "class ", "async def ", "@")):
            break
        if _IMPORT_LINE.match(line) and not line[:1].isspace():
            statement = [line]
            while "(" in line and ")" not in "".join(statement) and index + 1 < len(lines) and len(statement) < 12:
                index += 1
                statement.append(lines[index])
            size = estimate_tokens("\n".join(statement) + "\n")
            if len(kept) + len(statement) <= MAX_HEADER_LINES and size <= budget:
                kept += [part.rstrip() for part in statement]
                budget -= size
                last = index
        index += 1
    return ("\n".join(kept) + "\n" if kept else ""), last


def label_of(path: Path | None, roots: Iterable[Path], fallback: str) -> str:
    if path is None:
        return fallback
    for root in roots:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            continue
    return path.name


def estimate_tokens(text: str) -> int:
    """Tokens of `text`, estimated: a token a digit and a non-ASCII character, 3 characters
    a token for the rest. Against Gemma 3's tokenizer on 598 stdlib and httpx files (as
    comments): median 0.91 real tokens per estimated one, 95th percentile near 1; the older
    2-characters-a-token rule left half of the cap unused on ordinary code."""
    digits = sum(char.isdigit() for char in text)
    wide = sum(not char.isascii() for char in text)
    return digits + wide + -(-(len(text) - digits - wide) // 3)


def assemble(
    current: str,
    definitions: list[tuple[str, str]],
    chunks: list[Chunk],
    *,
    max_tokens: int,
    comment: str,
) -> ContextBlock | None:
    """The block for one file within `max_tokens` (see `choose`); sizes are
    counted in the commented form (`comment` and a space on every line)."""
    room = max(0, max_tokens) - estimate_tokens(f"{comment} Path: {current}\n")
    return render(current, choose(definitions, chunks, room, comment).files, comment)


def _fit(text: str, budget: int, comment: str) -> str:
    """`text` cut at a line end to fit `budget` tokens as comment lines ("" when fewer than
    3 lines fit)."""
    kept: list[str] = []
    used = 0
    for line in text.split("\n"):
        size = estimate_tokens(f"{comment} {line}\n")
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "\n".join(kept) if len([k for k in kept if k.strip()]) >= 3 else ""
