"""A second view of a request besides its MiniLM vector: TF-IDF over words and character n-grams.

The small encoder blurs words that decide a route ("docstring", "unit test", "stack trace",
"migrate"); sparse lexical features keep them, and character n-grams also match typos and
inflections ("refactoring", "refactr"). Fitted on the training utterances only; pure Python and
numpy, a few hundred dictionary look-ups per query.

Every script counts: words are Unicode letters and digits (NFKC, lower-cased, accents folded so
"código" and "codigo" share features), and Chinese, Japanese and Korean, written without spaces
between words, contribute single characters and character pairs/triples of each run instead.
MiniLM is English-only, so for a request in another language this view carries most of the signal.
"""

from __future__ import annotations

import math
import re
import unicodedata

import numpy as np
from attrs import define
from scipy import sparse

# Han, kana, Hangul (syllables and jamo), half-width katakana, CJK compatibility ideographs.
_CJK = "\u1100-\u11ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+(?:['.][^\W{_CJK}]+)*")
_IS_CJK = re.compile(rf"[{_CJK}]")


def fold(text: str) -> str:
    """NFKC (full-width forms to ASCII), lower case, accents off (é -> e, ü -> u; not CJK)."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).lower())
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def features(text: str) -> list[str]:
    """Word unigrams and bigrams and character 3-5-grams inside each word (padded by spaces);
    for a CJK run: its characters as words, and its character 2- and 3-grams."""
    out: list[str] = []
    words: list[str] = []
    for token in _TOKEN.findall(fold(text)):
        if _IS_CJK.match(token):
            out += [f"w:{ch}" for ch in token]
            for n in (2, 3):
                out += [f"c:{token[i : i + n]}" for i in range(len(token) - n + 1)]
            words.append(token)
            continue
        words.append(token)
        out.append(f"w:{token}")
        padded = f" {token} "
        for n in (3, 4, 5):
            out += [f"c:{padded[i : i + n]}" for i in range(max(1, len(padded) - n + 1))]
    out += [f"b:{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    return out


@define
class NgramVectorizer:
    vocabulary: dict[str, int]
    idf: np.ndarray  # (features,)

    @property
    def dim(self) -> int:
        return len(self.vocabulary)

    def transform(self, texts: list[str]) -> np.ndarray:
        """(n, features) sublinear TF-IDF rows, L2-normalised (all zeros when nothing is known)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, (columns, values) in enumerate(self._rows(texts)):
            out[row, columns] = values
        return out

    def transform_sparse(self, texts: list[str]) -> sparse.csr_matrix:
        """The same rows as a sparse matrix: training on thousands of rows x 20k features stays cheap."""
        rows = self._rows(texts)
        indptr = np.cumsum([0] + [len(c) for c, _ in rows])
        columns = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        values = np.concatenate([v for _, v in rows]) if rows else np.zeros(0, dtype=np.float32)
        return sparse.csr_matrix((values, columns, indptr), shape=(len(texts), self.dim), dtype=np.float32)

    def _rows(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for text in texts:
            counts: dict[int, int] = {}
            for feature in features(text):
                column = self.vocabulary.get(feature)
                if column is not None:
                    counts[column] = counts.get(column, 0) + 1
            columns = np.fromiter(counts, dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float32, count=len(counts)))
            values = tf * self.idf[columns]
            out.append((columns, (values / max(float(np.linalg.norm(values)), 1e-9)).astype(np.float32)))
        return out


def fit_vectorizer(texts: list[str], min_df: int = 2) -> NgramVectorizer:
    """Vocabulary: features seen in at least `min_df` texts (rarer ones are noise at this size)."""
    df: dict[str, int] = {}
    for text in texts:
        for feature in set(features(text)):
            df[feature] = df.get(feature, 0) + 1
    kept = sorted(f for f, count in df.items() if count >= min_df)
    n = len(texts)
    idf = np.array([math.log((1 + n) / (1 + df[f])) + 1.0 for f in kept], dtype=np.float32)
    return NgramVectorizer({f: i for i, f in enumerate(kept)}, idf)
