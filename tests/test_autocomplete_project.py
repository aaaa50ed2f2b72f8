"""Project context, multi-line modes and feedback records without a model: the ring
buffer, imported definitions (with a hostile workspace), the cap, the prompt layouts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from tinyarms.autocomplete import context, feedback, postprocess, templates
from tinyarms.autocomplete.prompt import Prompt
from tinyarms.config.validate import validate

HEADERS = '''"""Headers."""
import re

LIMIT = 10


def parse_header(line: str,
                 strict: bool = False) -> tuple[str, str]:
    """Split a "Name: value" line into its name and value.

    More text that is not shown.
    """
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


class Header:
    """One header."""

    def __init__(self, name, value):
        self.name = name

    def render(self) -> str:
        return self.name

    def _private(self):
        pass
'''


def chunk_lines(tag: str, count: int = 40) -> list[str]:
    return [f"value_{tag}_{n} = compute({n}, '{tag}')" for n in range(count)]


def test_ring_buffer_keeps_the_newest_drops_near_duplicates_and_binary() -> None:
    ring = context.RingBuffer(size=3, chunk_lines=16)
    lines = chunk_lines("a")
    assert ring.add("file:///a.py", "a.py", lines, 8)
    assert not ring.add("file:///a.py", "a.py", lines, 8)  # the same chunk again
    edited = list(lines)
    edited[2] = "value_a_2 = compute(2, 'changed')"
    assert ring.add("file:///a.py", "a.py", edited, 8)  # 15 of 16 lines shared: replaces the old one
    assert len(ring.chunks) == 1 and "changed" in ring.chunks[0].text
    for tag in "bcd":
        ring.add(f"file:///{tag}.py", f"{tag}.py", chunk_lines(tag), 0)
    assert [c.label for c in ring.chunks] == ["b.py", "c.py", "d.py"]  # size 3, newest last
    assert [c.label for c in ring.others("file:///c.py")] == ["b.py", "d.py"]
    assert not ring.add("file:///bin", "bin", ["\x00\x01\x02 data"] * 10, 0)


def test_imports_resolve_to_signatures_and_docstring_lines(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "headers.py").write_text(HEADERS)
    (tmp_path / "pkg" / "__init__.py").write_text("from .headers import parse_header\n")
    main = tmp_path / "main.py"
    source = "from pkg.headers import Header, LIMIT\nfrom pkg import parse_header\nimport os\n\nx = Hea"
    found = dict(context.Definitions([tmp_path], lambda p: None).for_file(source, main))
    rendered = "\n".join(found[(tmp_path / "pkg" / "headers.py").resolve()])
    # A class: its docstring line and one line a public method (and __init__).
    assert 'class Header:\n    """One header."""\n    def __init__(self, name, value): ...' in rendered
    assert "    def render(self) -> str: ..." in rendered and "_private" not in rendered
    assert "LIMIT = 10" in rendered
    # `from pkg import parse_header` follows the package's re-export to its definition.
    init = "\n".join(found[(tmp_path / "pkg" / "__init__.py").resolve()])
    assert init == (  # a signature over several lines is shown on one
        "def parse_header(line: str, strict: bool = False) -> tuple[str, str]:\n"
        '    """Split a "Name: value" line into its name and value."""\n    ...'
    )
    assert "More text" not in init and "partition" not in init
    # A file being typed does not parse: its import lines still do.
    broken = "from pkg.headers import (Header,\n    LIMIT)\n\ndef f(:\n"
    assert context.imports_of(broken)[0].names == ("Header", "LIMIT")


def test_the_definitions_the_file_uses_most_rank_first_and_fill_the_cap(tmp_path: Path) -> None:
    """Many imported names, a small cap: the ones the file uses most are kept (the most
    used rendered last, nearest the code); a module's members rank by `alias.member` use."""
    lib = tmp_path / "lib.py"
    lib.write_text("".join(f"def func_{n}(value, other=None):\n    return value\n\n\n" for n in range(40)))
    (tmp_path / "tools.py").write_text("def unused():\n    ...\n\n\ndef picked(a, b):\n    ...\n")
    names = ", ".join(f"func_{n}" for n in range(40))
    body = ["x = func_7(1)"] * 3 + ["pass"] * 100 + ["y = func_31(2)", "z = tools.picked(1, 2)", ""]
    source = f"from lib import {names}\nimport tools\n\n" + "\n".join(body)
    definitions = context.Definitions([tmp_path], lambda p: None)
    ranked = [text.split("(")[0] for _, text in definitions.ranked(source, tmp_path / "main.py")]
    assert ranked[:3] == ["def func_7", "def func_31", "def picked"], ranked[:5]
    project = context.Project(max_tokens=80)
    project.set_roots([tmp_path])
    block = project.build("file:///main.py", tmp_path / "main.py", source, {})
    assert block is not None and block.tokens_estimate <= 80
    shown = [line[2:].split("(")[0] for line in block.comments.split("\n") if line.startswith("# def ")]
    assert 3 <= len(shown) < 10 and sorted(shown) == sorted(ranked[: len(shown)]), (shown, ranked)
    assert block.comments.rindex("func_7") > block.comments.index("func_31"), block.comments  # 3 uses against 1
    # The file's own imports, as written, for a window that starts below them; a statement
    # longer than a quarter of the cap is left out.
    assert (block.header, block.header_end) == ("import tools\n", 1)
    assert context.import_header("import a\nfrom b import (c,\n    d)\n\ndef f():\n    import e\n", 100) == (
        "import a\nfrom b import (c,\n    d)\n",
        2,
    )


def test_a_hostile_workspace_cannot_make_it_read_outside_or_run_code(tmp_path: Path) -> None:
    workspace, outside = tmp_path / "workspace", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (outside / "secret.py").write_text("def leaked_secret():\n    'do not read'\n")
    (workspace / "secret.py").symlink_to(outside / "secret.py")  # a symlink out of the workspace
    (workspace / "sub").mkdir()
    marker = tmp_path / "ran"
    # A module shadowing the standard library, with code that would run on import.
    (workspace / "json.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n\ndef loads(text):\n    ...\n")
    source = "import secret\nfrom .. import secret as s2\nfrom ...outside.secret import leaked_secret\nimport json\n"
    definitions = context.Definitions([workspace], lambda p: None)
    found = definitions.for_file(source, workspace / "sub" / "main.py")
    text = "\n".join(t for _, texts in found for t in texts)
    assert "leaked_secret" not in text
    assert "def loads(text):" in text  # the workspace's json.py is read as text...
    assert not marker.exists()  # ...and never executed


def test_the_block_stays_under_its_cap_and_puts_definitions_nearest_the_file() -> None:
    ring = context.RingBuffer(size=16, chunk_lines=32)
    for index in range(200):
        ring.add(f"file:///m{index}.py", f"m{index}.py", chunk_lines(str(index)), 0)
    definitions = [("pkg/headers.py", f"def parse_{n}(line):\n    ...") for n in range(5)]
    block = context.assemble("main.py", definitions, ring.others("file:///main.py"), max_tokens=300, comment="#")
    assert block is not None
    assert block.tokens_estimate <= 300
    # The most relevant definition (first given) is rendered last, right before the file.
    assert block.comments.index("parse_1(") < block.comments.index("parse_0(")
    assert block.comments.endswith("# def parse_0(line):\n#     ...\n# Path: main.py\n")
    # Chunks (newest last) first, the definitions last, then the current file's label.
    assert block.files[-1][0] == "pkg/headers.py" and block.files[0][0].startswith("m")
    assert block.comments.index("# Path: m") < block.comments.index("# Path: pkg/headers.py")
    assert block.comments.endswith("# Path: main.py\n")
    many = [("pkg/big.py", f"def parse_{n}(line):\n    ...") for n in range(500)]
    full = context.assemble("main.py", many, ring.others("file:///main.py"), max_tokens=300, comment="//")
    assert full is not None and full.tokens_estimate <= 300 and "parse_0(" in full.comments
    # Digits and non-ASCII characters cost a token each in the estimate.
    assert context.estimate_tokens("abcdef") == 2 and context.estimate_tokens("123é") == 4
    assert context.assemble("main.py", [], [], max_tokens=300, comment="#") is None
    assert context.comment_for("src/app.ts") == "//" and context.comment_for("a.py") == "#"


def test_templates_place_the_context_where_the_model_reads_it() -> None:
    block = context.assemble("main.py", [("util.py", "def helper():\n    ...")], [], max_tokens=100, comment="#")
    assert block is not None
    prefix_only = templates.by_name("prefix-only").segments(
        "a = 1\n", "b = ", "", context_text=block.comments, extra_files=block.files, path="main.py"
    )
    assert prefix_only == [
        ("text", "# Path: util.py\n# def helper():\n#     ...\n# Path: main.py\n"),
        ("text", "a = 1\nb = "),
    ]
    qwen = templates.by_name("qwen2.5-coder").segments(
        "a = 1\n", "b = ", "", context_text=block.comments, extra_files=block.files, path="main.py"
    )
    joined = "".join(text for _, text in qwen)
    assert joined.startswith("<|file_sep|>util.py\ndef helper():\n    ...\n<|file_sep|>main.py\n<|fim_prefix|>")
    assert "# Path" not in joined  # repository tokens instead of comments


def prompt(before: str, line_prefix: str) -> Prompt:
    return Prompt(before, line_prefix, "", "", 0)


def test_multiline_modes() -> None:
    opener, plain, mid = prompt("def f():\n", "    "), prompt("x = 1\n", ""), prompt("x = 1\n", "y = ")
    assert postprocess.allows_multiline(opener, "auto") and not postprocess.allows_multiline(plain, "auto")
    assert postprocess.allows_multiline(prompt("int main() {\n", "  "), "auto")
    assert postprocess.allows_multiline(plain, "always") and not postprocess.allows_multiline(mid, "always")
    assert not postprocess.allows_multiline(opener, "never")


def config_with(multiline: object) -> tuple[object, list[object]]:
    data = {
        "tiers": {"local": {"provider": "llama-cpp", "model": "embedded:gemma3-270m"}},
        "roles": {"autocomplete": {"tier": "local", "multiline": multiline}},
    }
    return validate(data, {})


def test_multiline_accepts_the_old_bool_with_a_warning_and_rejects_nonsense() -> None:
    for old, new in ((True, "auto"), (False, "never")):
        config, problems = config_with(old)
        assert config is not None and config.roles.autocomplete.multiline == new  # type: ignore[attr-defined]
        assert [p.severity for p in problems] == ["warning"]  # type: ignore[attr-defined]
        assert f'read as "{new}"' in problems[0].message  # type: ignore[attr-defined]
    config, problems = config_with("sometimes")
    assert config is None and "multiline" in problems[0].message  # type: ignore[attr-defined]
    config, problems = config_with("always")
    assert config is not None and not problems


def offered(source: str = "model", length: int = 10) -> feedback.Offered:
    return feedback.Offered("embedded:gemma3-270m", "prefix-only", source, 42.0, length, 1, "python", "x" * length)


def test_feedback_records_lengths_only_and_stats_count_each_completion_once(tmp_path: Path) -> None:
    path = tmp_path / "autocomplete.jsonl"
    log = feedback.FeedbackLog(path)
    first, second, third = log.offer(offered()), log.offer(offered("cache", 8)), log.offer(offered())
    record = log.record
    assert record(first, "shown")["recorded"]
    assert record(first, "accepted")["recorded"]
    assert record(second, "partial", 50)["recorded"]
    assert record(third, "shown")["recorded"]
    assert record(third, "dismissed")["recorded"]
    assert not record("unknown", "accepted")["recorded"]
    with pytest.raises(ValueError, match="accepted_length"):
        record(first, "partial")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("text" not in line for line in lines)
    assert lines[2]["accepted_length"] == 8  # clamped to the suggestion's length
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    stats = feedback.stats(feedback.read(path=path))
    model = stats["models"]["embedded:gemma3-270m"]
    assert (model["shown"], model["accepted"], model["partial"], model["dismissed"]) == (3, 1, 1, 1)
    assert model["acceptance_rate"] == round(2 / 3, 3)
    assert model["sources"]["cache"]["partial"] == 1 and model["sources"]["model"]["accepted"] == 1
    table = feedback.format_stats(stats)
    assert "embedded:gemma3-270m" in table and "67%" in table
    with_text = feedback.FeedbackLog(tmp_path / "text.jsonl", with_text=True)
    with_text.record(with_text.offer(offered()), "accepted")
    assert json.loads((tmp_path / "text.jsonl").read_text())["text"] == "x" * 10


def test_the_files_imports_go_before_a_window_that_starts_below_them(tmp_path: Path) -> None:
    from tinyarms.autocomplete.engine import CompletionEngine, CompletionRequest

    (tmp_path / "headers.py").write_text(HEADERS)
    body = [f"value_{n} = {n}" for n in range(200)]
    source_lines = ["import headers", "", *body, "name, value = headers."]
    project = context.Project()
    project.set_roots([tmp_path])
    block = project.build("file:///main.py", tmp_path / "main.py", "\n".join(source_lines), {})
    assert block is not None and block.header == "import headers\n" and block.header_end == 0
    engine = CompletionEngine(None, templates.PREFIX_ONLY, model_name="x", max_latency_ms=None)  # type: ignore[arg-type]

    def prompt_text(lines: list[str]) -> str:
        request = CompletionRequest(lines, len(lines) - 1, len(lines[-1]), doc="main.py", context=block)
        return "".join(text for _, text in engine._segments(request, engine._prompt(request)))

    far = prompt_text(source_lines)  # the window starts far below the import
    assert far.startswith(block.comments + "import headers\nvalue_")
    assert "def parse_header(" in far and far.endswith("name, value = headers.")
    near = prompt_text(["import headers", "", "name, value = headers."])  # the window has the import
    assert near == block.comments + "import headers\n\nname, value = headers."


async def test_the_cap_holds_for_the_models_own_token_count(tmp_path: Path) -> None:
    """Digit- and underscore-heavy code has more tokens than the estimate says: counted by
    Gemma's tokenizer (its vocabulary only), a block over the cap is built again smaller,
    and the next block starts from the measured ratio."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from tinyarms.models.sources import resolve

    vocab = llama_cpp.Llama(str(resolve("embedded:gemma3-270m")), vocab_only=True, verbose=False)
    project = context.Project(max_tokens=512)
    project.set_roots([tmp_path])
    for index in range(200):
        text = "".join(f"def helper_{index}_{n}(value):\n    return value * {index} + {n * 7}\n\n\n" for n in range(12))
        project.ring.add(f"file:///m{index}.py", f"many/module_{index}.py", text.split("\n"), 0)
    source = "import os\n\nvalue = helper_"
    counted: list[int] = []

    async def build() -> context.ContextBlock | None:
        return project.build("file:///uses.py", tmp_path / "uses.py", source, {})

    async def count(text: str) -> int:
        counted.append(len(vocab.tokenize(text.encode(), add_bos=False)))
        return counted[-1]

    unmeasured = await build()
    assert unmeasured is not None and count_now(vocab, unmeasured) > 512  # the estimate alone overshoots here
    block = await project.measured("file:///uses.py", build, count)
    assert block is not None and block.tokens == counted[-1] <= 512 < counted[0], counted
    assert project.token_ratio > 1.0
    again = await project.measured("file:///uses.py", build, count)  # calibrated: fits at the first build
    assert again is not None and again.tokens is not None and 400 < again.tokens <= 512


def count_now(vocab: object, block: context.ContextBlock) -> int:
    return len(vocab.tokenize((block.comments + block.header).encode(), add_bos=False))  # type: ignore[attr-defined]


async def test_a_new_files_prefill_supersedes_an_older_one() -> None:
    """Scheduling only (the child's preemption is measured in scripts/bench_autocomplete.py):
    opening b.py while a.py's prefill runs evaluates b.py, not nothing."""
    import asyncio

    from tinyarms.autocomplete.engine import CompletionEngine, CompletionRequest

    class SlowChild:  # the LocalModel surface prefill uses; each prefill waits to be let go
        ready = True

        def __init__(self) -> None:
            self.started: list[str] = []
            self.release = asyncio.Event()

        async def prefill(self, segments: list[tuple[str, str]], *, chunk: int = 8) -> dict[str, object]:
            self.started.append(segments[-1][1])
            await self.release.wait()
            return {"preempted": False}

    child = SlowChild()
    engine = CompletionEngine(child, templates.PREFIX_ONLY, model_name="x")  # type: ignore[arg-type]
    assert engine.prefill(CompletionRequest(["a = 1", ""], 1, 0, doc="a.py"))
    await asyncio.sleep(0)
    assert engine.prefill(CompletionRequest(["b = 2", ""], 1, 0, doc="b.py"))
    assert not engine.prefill(CompletionRequest(["b = 2", ""], 1, 0, doc="b.py"))  # already under way
    await asyncio.sleep(0)
    child.release.set()
    await asyncio.sleep(0.01)
    assert child.started == ["a = 1\n", "b = 2\n"]
    assert engine.counts["prefill_superseded"] == 1 and engine.counts["prefill_done"] == 1


async def test_a_block_stays_the_same_wherever_the_user_types_until_its_inputs_change(tmp_path: Path) -> None:
    """Every changed block is a cold prompt (~500 tokens, ~2 s on one thread). On a real
    package file (the stdlib's email/headerregistry.py, its imports opened), counted by
    Gemma's tokenizer: a line cleared and typed again at every 20th line, the block is the
    same; it changes when a definition it shows is edited in its file, and when the file's
    imports change. Another document's token ratio is its own."""
    import shutil
    import sysconfig

    llama_cpp = pytest.importorskip("llama_cpp")
    from tinyarms.models.sources import resolve

    vocab = llama_cpp.Llama(str(resolve("embedded:gemma3-270m")), vocab_only=True, verbose=False)
    stdlib_email = Path(sysconfig.get_paths()["stdlib"]) / "email"
    package = tmp_path / "email"
    shutil.copytree(stdlib_email, package, ignore=shutil.ignore_patterns("__pycache__"))
    target = package / "headerregistry.py"
    source = target.read_text(encoding="utf-8")
    project = context.Project(max_tokens=512)
    project.set_roots([tmp_path])
    for name in ("_header_value_parser.py", "utils.py", "errors.py"):
        other = package / name
        project.ring.add(other.as_uri(), f"email/{name}", other.read_text(encoding="utf-8").split("\n"), 0)
    uri = target.as_uri()

    async def count(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False))

    async def block_for(text: str) -> context.ContextBlock:
        built = await project.measured(uri, lambda: asyncio.to_thread(project.build, uri, target, text, {}), count)
        assert built is not None and built.tokens is not None and built.tokens <= 512
        return built

    first = await block_for(source)
    lines = source.split("\n")
    for number in range(60, len(lines), 20):  # the user clears a line there and types another (below the imports)
        cleared = "\n".join([*lines[:number], "", *lines[number + 1 :]])
        typed = "\n".join([*lines[:number], "        value = parser.get_address_list(text)", *lines[number + 1 :]])
        assert await block_for(cleared) == first == await block_for(typed), number
    # Another document with a very different token ratio (digit-heavy) is measured: it
    # keeps its own ratio, and this block stays (one shared ratio changed both).
    digits = tmp_path / "digits.py"
    digits.write_text("".join(f"value_{n} = {n * 7919}\n" for n in range(400)))
    project.ring.add(digits.as_uri(), "digits.py", digits.read_text().split("\n"), 0)
    other = await project.measured(
        "file:///other.py",
        lambda: asyncio.to_thread(project.build, "file:///other.py", tmp_path / "other.py", "x = 1\n", {}),
        count,
    )
    assert other is not None and project.ratios["file:///other.py"] != project.ratios[uri]
    project.ring.drop(digits.as_uri())
    assert await block_for(source) == first
    # A definition the block shows, edited in its own file: the block follows it.
    shown = next(text for label, text in first.files if label == "email/utils.py" and "def " in text)
    name = shown.split("def ", 1)[1].split("(", 1)[0]
    utils = package / "utils.py"
    utils.write_text(utils.read_text(encoding="utf-8").replace(f"def {name}(", f"def {name}(extra_argument, ", 1))
    edited = await block_for(source)
    assert edited != first and f"def {name}(extra_argument, " in edited.comments
    # The file's imports change: so does the block.
    assert await block_for("import email.charset\n" + source) != edited


async def test_a_prefill_pre_empted_by_a_token_count_goes_on_and_the_block_is_tokenized_once() -> None:
    """Real embedded model. A token count (what a block rebuild sends) arrives while a
    prefill runs: the child stops the prefill, the engine resumes it, and it ends done; the
    completion there then evaluates almost nothing. The block, tokenized once and
    remembered, gives the same prompt as a fresh child does."""
    import sysconfig

    from tinyarms.autocomplete.engine import CompletionEngine, CompletionRequest
    from tinyarms.local_model import get_model

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lines = (stdlib / "email" / "headerregistry.py").read_text(encoding="utf-8").split("\n")[:120]
    utils = (stdlib / "email" / "utils.py").read_text(encoding="utf-8").split("\n")
    ring = context.RingBuffer(4, 60)
    ring.add("file:///utils.py", "email/utils.py", utils, 200)
    block = context.assemble("email/headerregistry.py", [], ring.others("x"), max_tokens=400, comment="#")
    assert block is not None and len(block.comments) >= 512  # long enough to be remembered
    request = CompletionRequest(lines, 119, 0, doc="headerregistry.py", context=block)
    answers = []
    for purpose in ("test-prefill-a", "test-prefill-b"):
        model = get_model("embedded:gemma3-270m", purpose=purpose, n_ctx=2048, n_threads=1)
        await model.start()
        try:
            engine = CompletionEngine(model, templates.PREFIX_ONLY, model_name="gemma", max_latency_ms=None)
            if purpose == "test-prefill-a":
                assert engine.prefill(request)
                await asyncio.sleep(0.2)
                await model.tokenize(block.comments)  # pre-empts the running prefill
                assert engine._prefill is not None
                await engine._prefill
                assert engine.counts["prefill_resumed"] >= 1 and engine.counts["prefill_done"] == 1, engine.counts
                assert engine.last_prefill["preempted"] is False, engine.last_prefill
                other = CompletionRequest(lines, 60, 0, doc="headerregistry.py", context=block)
                await engine.complete(other)  # the block's tokens come from the child's memory now
                engine.cache.clear()
            result = await engine.complete(request)
            answers.append((result.text, engine.last_stats["prompt_tokens"], engine.last_stats["evaluated_tokens"]))
        finally:
            await model.shutdown()
    (text_a, tokens_a, evaluated_a), (text_b, tokens_b, _) = answers
    assert (text_a, tokens_a) == (text_b, tokens_b), answers
