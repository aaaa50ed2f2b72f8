"""Conversations on disk, the history a turn sends, the chat budget, and where tests go."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from tinyarms.config.validate import validate
from tinyarms.edits import conventions
from tinyarms.requests import chat
from tinyarms.requests.context import Context
from tinyarms.requests.conversations import ConversationError, Store, Turn, history
from tinyarms.router.decision import Decision


def _turns(n: int, size: int = 40) -> list[Turn]:
    out = []
    for i in range(n):
        out.append(Turn(role="user", text=f"q{i}", content=f"question {i} " + "x" * size))
        out.append(Turn(role="assistant", text=f"a{i}", content=f"answer {i} " + "y" * size))
    return out


def test_a_conversation_is_one_json_file_that_a_new_store_reads_back(tmp_path):
    store = Store(tmp_path)
    conversation = store.open(None, "How do I  read\na file?")
    assert conversation.title == "How do I read a file?"
    conversation.turns += _turns(1)
    store.save(conversation)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"{conversation.id}.json"]  # no temporary file left behind
    assert json.loads(files[0].read_text())["turns"][0]["content"].startswith("question 0")
    again = Store(tmp_path).load(conversation.id)
    assert again is not None and again.turns == conversation.turns and again.title == conversation.title


def test_bounded_in_turns_and_in_files(tmp_path):
    store = Store(tmp_path, keep=3, max_turns=4)
    for i in range(5):
        conversation = store.open(f"c{i}", "hi")
        conversation.turns += _turns(3)
        store.save(conversation)
        os.utime(tmp_path / f"c{i}.json", (1000 + i, 1000 + i))  # distinct times, oldest first
    kept = store.list()
    assert sorted(c.id for c in kept) == ["c2", "c3", "c4"]
    assert all(len(c.turns) == 4 for c in kept)
    assert kept[0].turns[0].content.startswith("question 1")  # the oldest turns went first


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "x" * 65, "c:evil", "dot.dot"])
def test_an_id_can_never_name_a_path(tmp_path, bad):
    store = Store(tmp_path / "conversations")
    with pytest.raises(ConversationError, match="conversation id"):
        store.open(bad, "hi")
    with pytest.raises(ConversationError):
        store.delete(bad)
    assert not (tmp_path / "conversations").exists()


def test_an_unreadable_file_starts_afresh(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    store = Store(tmp_path)
    assert store.load("broken") is None
    assert store.open("broken", "hello").turns == []
    assert store.list() == []


def test_history_keeps_the_newest_whole_turns_within_the_budget():
    turns = _turns(5, size=200)  # about 55 tokens a message
    past = history(turns, budget=250)
    assert past.dropped == 6 and len(past.messages) == 4
    assert past.messages[0]["role"] == "user" and past.messages[0]["content"].startswith("question 3")
    assert "3 oldest" not in (past.note() or "") and "6 oldest turns" in (past.note() or "")
    assert history(turns, budget=10_000).dropped == 0 and history(turns, budget=10_000).note() is None
    assert history(turns, budget=0).messages == []


def test_a_turn_sends_system_history_then_the_request_with_its_context():
    decision = Decision.explicit("chat", "local")
    with open(Path(__file__).resolve().parents[1] / "roles" / "base.toml", "rb") as f:
        routes = _config(tomllib.load(f)).routes  # the shipped routes, with their instructions
    turn = chat.turn_messages("/explain", decision, Context(), _turns(1), budget_tokens=2000, routes=routes)
    assert [m["role"] for m in turn.messages] == ["system", "user", "assistant", "user"]
    assert turn.messages[-1]["content"] == "Explain what this code does." == turn.content
    assert chat.request_text("/chat  tell me a joke", decision, routes) == "tell me a joke"


def _config(data):
    config, problems = validate(data, {})
    assert config is not None, problems
    return config


def test_the_budget_is_the_role_setting_capped_by_a_local_models_context():
    remote = _config({"tiers": {"team": {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}},
                      "roles": {"chat": {"tier": "team", "context_tokens": 6000}}})  # fmt: skip
    assert chat.budget(remote, "chat") == 6000
    local = _config({"tiers": {"local": {"provider": "llama-cpp", "model": "embedded:gemma3-270m", "n_ctx": 2048}},
                     "roles": {"chat": {"tier": "local", "context_tokens": 6000, "max_tokens": 256}}})  # fmt: skip
    assert chat.budget(local, "chat") == 2048 - 256 - 64


def test_where_tests_go(tmp_path):
    root = tmp_path
    (root / "pkg").mkdir()
    source = str(root / "pkg" / "shapes.py")
    assert conventions.test_file(source, str(root)) == str(root / "pkg" / "test_shapes.py")
    (root / "tests").mkdir()
    assert conventions.test_file(source, str(root)) == str(root / "tests" / "test_shapes.py")
    assert conventions.test_file(str(root / "tests" / "test_shapes.py"), str(root)) is None  # already a test file
    assert conventions.test_file(str(root / "cmd" / "main.go"), str(root)) == str(root / "cmd" / "main_test.go")
    assert conventions.test_file(str(root / "web" / "app.tsx"), str(root)) == str(root / "web" / "app.test.tsx")
    (root / "web" / "__tests__").mkdir(parents=True)
    expected = str(root / "web" / "__tests__" / "app.test.ts")
    assert conventions.test_file(str(root / "web" / "app.ts"), str(root)) == expected
    assert conventions.test_file(str(root / "src" / "lib.rs"), str(root)) is None  # Rust: in the file
    assert conventions.module_name(str(root / "src" / "pkg" / "shapes.py"), str(root)) == "pkg.shapes"
    assert conventions.module_name(str(root / "pkg" / "__init__.py"), str(root)) == "pkg"
