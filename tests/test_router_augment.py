"""Typed-like training variants (router/augment.py), the classifier cache, and the two ways of
combining the encoders (router.combine). Requests here are written for this test, not taken
from any held-out or development set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyarms.config import ConfigInputs, load_config
from tinyarms.router import augment
from tinyarms.router.classifier import cached_train, train
from tinyarms.router.encoder import load_encoder
from tinyarms.router.router import Router

ROWS = [
    ("fix", "the login form crashes when the password field is empty"),
    ("document", "write a docstring for this function"),
    ("none", "what's a good name for a cat?"),
    ("test", "escribe pruebas unitarias para esta clase"),
    ("explain", "这个函数是做什么的"),
]


def test_variants_are_seeded_by_the_row_and_keep_what_is_asked() -> None:
    for label, text in ROWS:
        first = augment.variants(text, label, copies=3)
        assert first == augment.variants(text, label, copies=3)  # the same rows give the same variants
        assert first and all(v != text for v in first) and len(set(first)) == len(first)
    texts, labels = augment.augment([t for _, t in ROWS], [label for label, _ in ROWS], copies=2)
    assert texts[: len(ROWS)] == [t for _, t in ROWS]  # the originals first, unchanged
    assert len(texts) == len(labels) > len(ROWS)
    by_text = dict(zip(texts, labels, strict=True))
    for label, text in ROWS:
        assert all(by_text[v] == label for v in augment.variants(text, label, copies=2))
    assert augment.augment(["a b"], ["fix"], copies=0) == (["a b"], ["fix"])


def test_each_change_does_what_it_says() -> None:
    import random

    rng = random.Random(0)
    assert augment._case("Why does this fail?", rng) == "why does this fail"
    typo = augment._typos("refactor the parser", random.Random(3))
    assert typo != "refactor the parser" and typo[0] == "r" and abs(len(typo) - len("refactor the parser")) <= 2
    assert augment._typos("整理这段代码", rng) == "整理这段代码"  # no typos in CJK text
    assert any(m in augment._mention("explain this", rng) for m in augment.MENTIONS)
    assert any(c in augment._code("explain this", rng) for c in augment.CODE)
    # Error lines only for routes where people paste them.
    for _ in range(20):
        assert not any(e in v for v in augment.variants("write a docstring for this", "document", 3)
                       for e in augment.ERRORS)  # fmt: skip
    pasted = [v for seed in range(30) for v in augment.variants(f"why does it crash {seed}", "fix", 3)]
    assert any(any(e in v for e in augment.ERRORS) for v in pasted)


def test_the_classifier_cache_gives_the_same_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    texts = [f"{word} the code number {i}" for i, word in enumerate(["fix", "explain", "document"] * 10)]
    labels = [t.split()[0] for t in texts]
    vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    fresh = train(vectors, labels, texts)
    first = cached_train(tmp_path, "key", vectors, labels, texts)
    [stored] = list(tmp_path.glob("*.npz"))
    again = cached_train(tmp_path, "key", vectors, labels, texts)  # read back from the file
    probe = ["fix the code", "document it please"]
    for model in (first, again):
        assert model.labels == fresh.labels
        assert np.allclose(model.probabilities(vectors[:2], probe), fresh.probabilities(vectors[:2], probe), atol=1e-6)
    # Other rows (or another encoder) are another model; a broken file is refitted, not fatal.
    cached_train(tmp_path, "other-encoder", vectors, labels, texts)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    stored.write_bytes(b"not a model")
    broken = cached_train(tmp_path, "key", vectors, labels, texts)
    assert np.allclose(broken.probabilities(vectors[:2], probe), fresh.probabilities(vectors[:2], probe), atol=1e-6)


@pytest.fixture(scope="module")
def encoders() -> tuple[Any, Any]:
    return load_encoder("all-MiniLM-L6-v2"), load_encoder("use-multilingual-v3")


def router_with(tmp_path: Path, encoders: tuple[Any, Any], toml: str) -> Router:
    user = tmp_path / "user.toml"
    user.write_text(toml)
    result = load_config(ConfigInputs(user_file=user, env={"TINYARMS_ROUTER__CACHE_SIZE": "0"}))
    assert result.config is not None, result.problems
    return Router(result.config, encoders[0], multilingual=encoders[1])


def test_english_requests_average_both_encoders_and_others_take_the_multilingual_one(
    tmp_path: Path, encoders: tuple[Any, Any]
) -> None:
    average = router_with(tmp_path, encoders, '[router]\ncombine = "average"\nencoder_weight = 0.4\n')
    switch = router_with(tmp_path, encoders, '[router]\ncombine = "switch"\n')
    english, german = "rename this variable to something clearer", "benenne diese Variable verständlicher um"
    for router in (average, switch):
        assert router.classifier is not None and router.multilingual_classifier is not None
    first = {t: average.classifier.probabilities(encoders[0].encode([t]), [t]) for t in (english, german)}  # type: ignore[union-attr]
    second = {t: average.multilingual_classifier.probabilities(encoders[1].encode([t]), [t]) for t in (english, german)}  # type: ignore[union-attr]
    assert np.allclose(average.probabilities([english])[1], 0.4 * first[english] + 0.6 * second[english], atol=1e-5)
    assert np.allclose(switch.probabilities([english])[1], first[english], atol=1e-5)
    for router in (average, switch):  # MiniLM knows only English: no vote on German
        assert np.allclose(router.probabilities([german])[1], second[german], atol=1e-5)
    # A batch mixing both gives each row what it would get alone.
    _, batch = average.probabilities([german, english])
    assert np.allclose(batch[0], second[german][0], atol=1e-5)
    assert np.allclose(batch[1], 0.4 * first[english][0] + 0.6 * second[english][0], atol=1e-5)
    for router in (average, switch):
        assert router.route(english).route == "refactor" and router.route(german).route == "refactor"


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("add a docstring to parse()", True),
        ("implement fizzbuzz", True),
        ("explain what λ does in this lambda", True),  # one quoted letter of another script
        ('fix this: x = "naïve café"', True),
        ("arregla el bug en parse()", False),
        ("исправь эту ошибку", False),
        ("اشرح ماذا تفعل هذه الدالة parse_args", False),  # Arabic: a script the model's list lacks
        ("इस फ़ंक्शन के लिए टेस्ट लिखो", False),  # Devanagari
        ("תקן את הבאג בפונקציה הזאת", False),  # Hebrew
        ("เขียนเทสต์ให้ฟังก์ชันนี้", False),  # Thai
        ("Ελέγξτε αυτόν τον κώδικα", False),  # Greek
    ],
)
def test_language_guess_knows_every_script(text: str, english: bool) -> None:
    from tinyarms.router.language import is_english

    assert is_english(text) is english


def test_a_request_in_a_script_the_guess_did_not_list_goes_to_the_multilingual_encoder(
    tmp_path: Path, encoders: tuple[Any, Any]
) -> None:
    switch = router_with(tmp_path, encoders, "")
    arabic = "اكتب اختبارات وحدة لهذه الدالة"  # "write unit tests for this function"
    assert switch.multilingual_classifier is not None
    expected = switch.multilingual_classifier.probabilities(encoders[1].encode([arabic]), [arabic])
    assert np.allclose(switch.probabilities([arabic])[1], expected, atol=1e-5)
    assert switch.route(arabic).route == "test"
