"""Is a request in English? The router embeds English requests with MiniLM and the rest with a
multilingual encoder; the bench and cross-validation report accuracy by it. About 0.2 ms a request.

py3langid (langid.py's model, shipped inside the package, numpy only), restricted to English and
the languages developers most often write in, so that a short English request full of
identifiers is not called Catalan or Sesotho. A request in Latin script counts as English unless
the model gives English under 5% ("implement fizzbuzz" gets 26%, "arregla el bug en parse()"
2%); one in Cyrillic, kana, Han or Hangul is never English, nor one with two or more letters of
any other script that is not Latin (Arabic, Hebrew, Devanagari, Thai, Greek, ...: scripts the
language list above does not know, which the model would otherwise rank as English or Catalan;
a single letter such as a quoted λ or π does not count); one with no letters always is.
"""

from __future__ import annotations

import functools
import re
from typing import Any

LANGUAGES = ["en", "es", "de", "fr", "pt", "it", "nl", "pl", "ru", "uk", "tr", "zh", "ja", "ko", "vi", "id", "sv", "cs"]
_LETTERS = re.compile(r"[^\W\d_]")
_NON_LATIN = re.compile(r"[\u0400-\u04ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
# Latin letters: ASCII, Latin-1 and Extended-A/B, IPA, Extended Additional (Vietnamese), full-width.
_LATIN = re.compile(
    r"[A-Za-z\u00aa\u00b5\u00ba\u00c0-\u02af\u1d00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uff21-\uff3a\uff41-\uff5a]"
)


@functools.lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(LANGUAGES)
    return identifier


MIN_ENGLISH = 0.05


def is_english(text: str) -> bool:
    if _NON_LATIN.search(text):  # whatever code or English words surround it
        return False
    letters = _LETTERS.findall(text)
    if not letters:
        return True
    if len(letters) - len(_LATIN.findall(text)) >= 2:  # another script: Arabic, Hebrew, Devanagari, Thai, ...
        return False
    ranked = dict(_identifier().rank(text))
    return float(ranked.get("en", 0.0)) >= MIN_ENGLISH
