"""Text normalisation shared by the keyword index and keyword queries."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

#: A word as the keyword index tokenises it (letters or digits; ``_`` separates).
WORD = re.compile(r"[^\W_]+")
_BOUNDARY = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def split_letters_digits(text: str) -> str:
    """Insert a space where letters meet digits: ``Invoice581355`` -> ``Invoice 581355``.

    Applied to every keyword document and every keyword query alike, so a code
    typed with or without separators (``CS00082662``, ``INV-2018``) and OCR text
    that lost a space match the same token sequence.
    """
    return _BOUNDARY.sub(" ", text)


def name_and_folder(path: str, root: str) -> tuple[str, str]:
    """Split an image path into its file name and the folder words worth indexing.

    The folder runs from the indexed root's own name down (``photos/holiday``), so
    that the absolute prefix (``/home/alice``) does not make every image match.
    """
    folder, _, name = path.rpartition("/")
    base = root.rstrip("/").rpartition("/")[0]
    if folder.startswith(base + "/"):
        folder = folder[len(base) + 1 :]
    return name, folder


#: Words too common to mean anything as keywords (English); quoted phrases keep them.
STOPWORDS = frozenset(
    """a an the and or but if then of at by for with about against between into through during
    before after above below to from up down in out on off over under again further once here
    there when where why how all any both each few more most other some such no nor not only own
    same so than too very can will just should now is are was were be been being have has had
    having do does did doing i me my we our you your he him his she her it its they them their
    what which who whom this that these those am as until while photo picture image images photos
    pictures showing shows show""".split()
)


def fold(text: str) -> str:
    """Lower-case and strip accents, as the keyword index's tokenizer does (café -> cafe)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def join_words(words: Sequence[str], last: str = "and") -> str:
    """``["red", "white", "blue"]`` -> ``red, white and blue`` (``last``: the final conjunction)."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def article(word: str) -> str:
    """The indefinite article for ``word``: ``an`` before a vowel, else ``a``."""
    return "an" if word[:1].lower() in "aeiou" else "a"
