"""Which indexed image a person means: a path, a path relative to a folder, a bare file name, an id.

One matcher serves every place that takes an image by name (catalogue import, ``tag``,
``show``, ``collection``, ``search --like``, ``tune``), so a name that works in one works
in all. A bare name that several indexed images share is never guessed: the caller gets
every candidate and says which ones they are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from searchengine.errors import NotFound, SearchEngineError
from searchengine.imaging import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from searchengine.records import ImageRecord
    from searchengine.store.db import Store

#: Candidates named in an "ambiguous name" message; the rest are counted.
SHOWN = 10


class AmbiguousName(SearchEngineError):
    """A bare file name that several indexed images share."""


class ImageNames:
    """Indexed images by path and by file name (case-insensitive), for matching references."""

    def __init__(self, images: Iterable[tuple[int, str]]) -> None:
        """:param images: ``(id, absolute path)`` of the images that may be matched."""
        self.paths: dict[int, str] = {}
        self.by_path: dict[str, int] = {}
        self.by_name: dict[str, list[int]] = defaultdict(list)
        for image_id, path in images:
            self.paths[image_id] = path
            self.by_path[path] = image_id
            self.by_name[path.rsplit("/", 1)[-1].lower()].append(image_id)

    @classmethod
    def searchable(cls, store: Store) -> ImageNames:
        """The images that have a vector (what import and tuning may use)."""
        return cls(store.images.searchable_paths())

    def find(self, ref: str, bases: Sequence[str | Path] = (), loose: bool = True) -> list[int]:
        """The ids ``ref`` may name: one, none, or (a shared bare name) several.

        Tried in turn: ``ref`` as an indexed path; ``ref`` relative to each of ``bases``
        (several bases holding it: all of them, never the first); the images whose file
        name is ``ref``'s (its last part), narrowed to those whose path ends with ``ref``
        when it has folders and that tells them apart.

        :param loose: a ``ref`` with folders may match by its file name alone (a catalogue
            written on another machine); False: its folders must end the indexed path.
        """
        ref = ref.strip()
        if not ref or "\x00" in ref:
            return []
        if ref in self.by_path:
            return [self.by_path[ref]]
        found: dict[int, None] = {}
        for base in bases:
            try:
                image_id = self.by_path.get(str((Path(base) / ref).expanduser().resolve()))
            except (OSError, RuntimeError, ValueError):  # ~nosuchuser, a symlink loop
                image_id = None
            if image_id is not None:
                found[image_id] = None
        if found:
            return list(found)
        rel = ref.replace("\\", "/").removeprefix("./")
        candidates = self.by_name.get(rel.rsplit("/", 1)[-1].lower(), [])
        if "/" in rel and (len(candidates) > 1 or not loose):
            tail = "/" + rel.lower().lstrip("/")
            narrowed = [i for i in candidates if self.paths[i].lower().endswith(tail)]
            candidates = narrowed if narrowed or not loose else candidates
        return list(candidates)

    def one(self, ref: str, bases: Sequence[str | Path] = (), loose: bool = True) -> int | None:
        """The id ``ref`` names, None when it names none.

        :raises AmbiguousName: several indexed images have that name (all listed).
        """
        ids = self.find(ref, bases, loose)
        if len(ids) > 1:
            raise AmbiguousName(ambiguity(ref, [self.paths[i] for i in ids]))
        return ids[0] if ids else None


def ambiguity(ref: str, paths: Sequence[str]) -> str:
    """The message for a name that ``paths`` share."""
    more = f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else ""
    shown = ", ".join(sorted(paths)[:SHOWN]) + more
    return f"{len(paths)} indexed images are named {ref!r}: {shown}; give its path"


def looks_like_image(ref: str) -> bool:
    """Whether ``ref`` reads as an image file's name (its suffix is one the indexer takes)."""
    return Path(ref.strip()).suffix.lower() in IMAGE_SUFFIXES


class ImageResolver:
    """Resolves what people type for an image to its indexed record, as every command should.

    A path (absolute, or relative to the working folder) or an id is looked up directly;
    anything else is matched by :class:`ImageNames` over every indexed image, relative to
    the indexed folders first. The names are read once, when first needed.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._names: ImageNames | None = None
        self._roots: list[str] = []

    @property
    def names(self) -> ImageNames:
        if self._names is None:
            self._names = ImageNames(self.store.images.all_paths())
            self._roots = self.store.images.roots()
        return self._names

    def find(self, ref: str) -> ImageRecord | None:
        """The image ``ref`` names, or None.

        :raises AmbiguousName: a bare name several indexed images share.
        """
        rec = self.store.images.resolve(ref)
        if rec is None:
            image_id = self.names.one(ref, self._roots, loose=False)  # /elsewhere/a.png is not a.png
            rec = self.store.images.by_id([image_id]).get(image_id) if image_id is not None else None
        return rec

    def __call__(self, ref: str) -> ImageRecord:
        """The image ``ref`` names.

        :raises NotFound: no indexed image has that path, id or name.
        :raises AmbiguousName: a bare name several indexed images share.
        """
        rec = self.find(ref)
        if rec is None:
            raise NotFound(f"not in the index: {ref} (index it with 'searchengine index')")
        return rec
