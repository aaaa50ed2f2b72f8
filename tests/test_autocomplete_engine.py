"""The FIM engine's parts without a model: templates, prompts, post-processing."""

from __future__ import annotations

import pytest

from tinyarms.autocomplete import postprocess, templates
from tinyarms.autocomplete.prompt import Prompt, build, from_text


def joined(segments: list[tuple[str, str]]) -> str:
    return "".join(text for _, text in segments)


# -- templates ----------------------------------------------------------------------------

KNOWN = {
    "qwen2.5-coder": "<|fim_prefix|>def f(x):\n<|fim_suffix|>)\n    return y<|fim_middle|>    y = g(x",
    "starcoder2": "<fim_prefix>def f(x):\n<fim_suffix>)\n    return y<fim_middle>    y = g(x",
    "santacoder": "<fim-prefix>def f(x):\n<fim-suffix>)\n    return y<fim-middle>    y = g(x",
    "deepseek-coder": "<｜fim▁begin｜>def f(x):\n<｜fim▁hole｜>)\n    return y<｜fim▁end｜>    y = g(x",
    "codegemma": "<|fim_prefix|>def f(x):\n<|fim_suffix|>)\n    return y<|fim_middle|>    y = g(x",
    "codestral": "[SUFFIX])\n    return y[PREFIX]def f(x):\n    y = g(x",
    "prefix-only": "def f(x):\n    y = g(x",
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_every_template_renders_the_known_layout(name: str) -> None:
    template = templates.by_name(name)
    segments = template.segments("def f(x):\n", "    y = g(x", ")\n    return y")
    assert joined(segments) == KNOWN[name]
    # Control tokens are separate segments, so code containing them stays text.
    assert all(kind == "text" or text in template.identifying_tokens() for kind, text in segments)
    # The text before the cursor on its line comes last: typing only appends tokens.
    if template.order != "spm":
        assert segments[-1] == ("text", "    y = g(x") or segments[-1][1].endswith("    y = g(x")


def test_qwen_repository_context() -> None:
    template = templates.by_name("qwen2.5-coder")
    segments = template.segments(
        "a = 1\n", "b = ", "", path="pkg/mod.py", repo="tinyarms", extra_files=[("pkg/util.py", "X = 2")]
    )
    assert joined(segments) == (
        "<|repo_name|>tinyarms\n<|file_sep|>pkg/util.py\nX = 2\n<|file_sep|>pkg/mod.py\n"
        "<|fim_prefix|>a = 1\n<|fim_suffix|><|fim_middle|>b = "
    )


@pytest.mark.parametrize("name", [n for n in KNOWN if n != "prefix-only"])
def test_detection_from_the_vocabulary(name: str) -> None:
    vocabulary = set(templates.by_name(name).identifying_tokens())
    assert templates.detect({}, vocabulary.__contains__).name == name


def test_detection_from_gguf_fim_ids_prefers_the_matching_template() -> None:
    qwen = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>"}
    fim = {"pre": "<|fim_prefix|>", "suf": "<|fim_suffix|>", "mid": "<|fim_middle|>"}
    assert templates.detect(fim, qwen.__contains__).name == "qwen2.5-coder"
    gemma = {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"}
    assert templates.detect(fim, gemma.__contains__).name == "codegemma"
    odd = templates.detect({"pre": "<PRE>", "suf": "<SUF>", "mid": "<MID>"}, lambda s: False)
    assert (odd.name, odd.prefix, odd.suffix, odd.middle) == ("gguf-fim", "<PRE>", "<SUF>", "<MID>")


def test_no_fim_tokens_means_prefix_only_and_override_wins() -> None:
    assert templates.detect({}, lambda s: False) is templates.PREFIX_ONLY
    assert templates.detect({}, lambda s: False, override="starcoder2").name == "starcoder2"
    with pytest.raises(templates.UnknownTemplate, match="known: qwen2.5-coder"):
        templates.by_name("qwen3")


# -- prompt -------------------------------------------------------------------------------


def code_lines(count: int) -> list[str]:
    return [f"value_{i} = compute({i})  # line {i}" for i in range(count)]


def test_prompt_start_is_stable_while_typing_and_moving_down() -> None:
    lines = code_lines(400)
    first = build(lines, 200, 5)
    assert first.first_line % 16 == 0 and len(first.before) <= 2000
    assert first.line_prefix == lines[200][:5] and first.line_suffix == lines[200][5:]
    # Typing on the line, or going down a few lines, keeps the start: the KV cache stays valid.
    assert build(lines, 200, 12).first_line == first.first_line
    assert build(lines, 203, 0).first_line == first.first_line
    sticky = build(lines, 205, 0, cold_chars=600, sticky_start=first.first_line)
    assert sticky.first_line == first.first_line
    cold = build(lines, 300, 0, cold_chars=600, sticky_start=first.first_line)  # too far: start afresh, small
    assert cold.first_line > first.first_line and len(cold.before) <= 600
    # A jump within prefix_chars of the start, but past what the KV cache holds (the lines
    # after the last prompt's cursor line) by more than a cold window: start afresh too.
    top = build(lines, 0, 0, cold_chars=600)
    near = build(lines, 3, 0, cold_chars=600, sticky_start=top.first_line, sticky_line=0)
    jump = build(lines, 50, 0, cold_chars=600, sticky_start=top.first_line, sticky_line=0)
    assert near.first_line == top.first_line == 0 and len("\n".join(lines[:50])) <= 2000
    assert jump.first_line > 0 and len(jump.before) <= 600


def test_prompt_from_text_and_bounds() -> None:
    prompt = from_text("import os\ndef f():\n    return os.pa", "th\nx = 1\n")
    assert prompt.before == "import os\ndef f():\n"
    assert (prompt.line_prefix, prompt.line_suffix, prompt.below) == ("    return os.pa", "th", "x = 1\n")
    huge = build(["x" * 100_000], 0, 100_000)
    assert len(huge.line_prefix) == 1000  # a minified line keeps only its end


# -- post-processing ----------------------------------------------------------------------


def prompt_at(before: str, line_prefix: str, line_suffix: str = "", below: str = "") -> Prompt:
    return Prompt(before, line_prefix, line_suffix, below, 0)


def test_single_line_stops_at_the_line_end_without_trailing_garbage() -> None:
    prompt = prompt_at("def f(x):\n", "    return x")
    assert postprocess.clean(" + 1   \n    print(x)", prompt, multiline=True) == " + 1"
    assert postprocess.clean(" + 1<|endoftext|>junk", prompt, multiline=False) == " + 1"


def test_text_that_the_rest_of_the_line_already_has_is_dropped() -> None:
    prompt = prompt_at("", "print(len(x", "))")
    assert postprocess.clean("s))", prompt, multiline=False) == "s"
    assert postprocess.clean("s)", prompt, multiline=False) == "s"
    assert postprocess.clean("s, 2", prompt, multiline=False) == "s, 2"


def test_multiline_only_in_a_block_and_it_ends_at_a_dedent_or_existing_code() -> None:
    opener = prompt_at("def f(items):\n", "    ", below="print('done')")
    raw = "total = 0\n    for item in items:\n        total += item\nprint('done')"
    assert postprocess.clean(raw, opener, multiline=True) == (
        "total = 0\n    for item in items:\n        total += item"
    )
    assert postprocess.clean(raw, opener, multiline=False) == "total = 0"
    # Mid-line, never more than the line.
    assert postprocess.clean("a\nb", prompt_at("x = 1\n", "y = "), multiline=True) == "a"
    # A block ends at an empty line; tabs follow the file's style.
    tabs = prompt_at("def f():\n\tif x:\n", "\t\t")
    assert postprocess.clean("a()\n\t\tb()\n\n\t\tc()", tabs, multiline=True) == "a()\n\t\tb()"
    spaces = prompt_at("def f():\n    if x:\n", "        ")
    assert postprocess.clean("a()\n\t\tb()", spaces, multiline=True) == "a()\n        b()"


def test_long_lines_still_give_context() -> None:
    lines = ["y" * 250 for _ in range(50)]
    prompt = build(lines, 45, 3, cold_chars=600)
    assert prompt.before == ("y" * 250 + "\n") * 2  # no multiple of 16 fits: the lines that do
    assert build(lines, 45, 9, cold_chars=600, sticky_start=prompt.first_line).first_line == prompt.first_line
