"""Forget folders: take every image indexed under them out of the index, on disk or not.

The images go the way an index run removes files that vanished
(:meth:`~searchengine.store.images.Images.delete_paths`): their rows, keyword rows, vectors,
OCR and captions, the generation bumped so the FAISS index is rebuilt, and the near-duplicate
groups marked pending and found again (:func:`searchengine.derived.refresh`). Everything
else stays: other images, their tags, collections and metadata.

User data (your tags, collection memberships, imported metadata) of a forgotten image goes
with it: it describes an image no longer indexed. The one exception is the indexer's own:
an image whose content is still indexed at exactly one other path (a moved folder) hands
its user data to that copy (:meth:`~searchengine.store.images.Images.heirs`). Collections
themselves stay, even emptied. :func:`plan_forget` says all this beforehand (it reads
only), so the edges can show it and ask; :func:`forget` refuses to drop user data unless
``confirmed``, and plans again inside its write transaction, so what it reports is what
it did.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from searchengine import derived
from searchengine.duplicates import DuplicateRule
from searchengine.errors import NotFound, SearchEngineError
from searchengine.store.db import Store
from searchengine.store.lock import IndexLock
from searchengine.store.sql import rows_for


class NothingIndexed(NotFound):
    """A folder to forget holds no indexed image."""


class NeedsConfirmation(SearchEngineError):
    """Forgetting would drop user data and was not confirmed; ``plan`` says how much."""

    def __init__(self, plan: ForgetPlan) -> None:
        moved = "; if the folder moved, index its new place first: forget then hands them over"
        if all(_on_disk(f) for f, _ in plan.folders):  # still there: it did not move
            moved = ""
        super().__init__(
            f"{plan.summary(done=False)}: {plan.what_goes()}{moved}; confirm to forget them anyway"
        )
        self.plan = plan


@dataclass(frozen=True)
class ForgetPlan:
    """What forgetting some folders removes.

    :param folders: (folder, images indexed under it), in the order given.
    :param paths: every image path to remove.
    :param tagged: images removed with your tags on them.
    :param in_collections: images removed from at least one collection.
    :param with_metadata: images removed with imported metadata.
    :param with_user_data: images removed with any of the three.
    :param handed_over: images whose user data moves to their one copy elsewhere instead.
    :param comes_back: (folder, indexed root containing it): folders still on disk inside a
        root, which the next ``index`` of that root adds back.
    :param everything: no image would be left in the index.
    """

    folders: tuple[tuple[str, int], ...]
    paths: tuple[str, ...]
    tagged: int = 0
    in_collections: int = 0
    with_metadata: int = 0
    with_user_data: int = 0
    handed_over: int = 0
    comes_back: tuple[tuple[str, str], ...] = ()
    everything: bool = False

    @property
    def images(self) -> int:
        return len(self.paths)

    @property
    def needs_confirmation(self) -> bool:
        """User data would go, or the index would be left empty (a stray "/" forgets it all)."""
        return bool(self.with_user_data) or self.everything

    def what_goes(self) -> str:
        """Why forgetting needs a yes, in words."""
        parts = []
        if self.with_user_data:
            parts.append("their tags, collection memberships and imported metadata would go with them")
        if self.everything:
            parts.append("that is every image in the index, with its OCR text and captions")
        return "; ".join(parts)

    def summary(self, done: bool = True) -> str:
        """One line: ``forgot 12 images under /x (3 tagged, 2 in collections)``."""
        where = ", ".join(f for f, _ in self.folders)
        verb = "forgot" if done else "would forget"
        lost = [
            f"{n} {what}"
            for n, what in (
                (self.tagged, "tagged"),
                (self.in_collections, "in collections"),
                (self.with_metadata, "with imported metadata"),
            )
            if n
        ]
        if self.handed_over:
            copies = "its copy" if self.handed_over == 1 else "their copies"
            lost.append(f"user data of {self.handed_over} kept on {copies} indexed elsewhere")
        detail = f" ({', '.join(lost)})" if lost else " (no tags, collections or metadata)"
        return f"{verb} {_plural(self.images, 'image')} under {where}{detail}"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["folders"] = [{"folder": f, "images": n} for f, n in self.folders]
        data["comes_back"] = [{"folder": f, "root": r} for f, r in self.comes_back]
        del data["paths"]
        return {"images": self.images, **data}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _forms(folder: str) -> list[str]:
    """The absolute forms a folder may be indexed under: with links resolved (as index runs
    store paths; a vanished folder resolves as far as its parents exist), then as written."""
    if not folder.strip() or "\x00" in folder or _undecodable(folder):
        raise SearchEngineError(f"not a folder name: {folder!r}")
    path, forms = Path(folder), []
    try:
        path = path.expanduser()
        forms.append(str(path.resolve()))
    except (OSError, RuntimeError):  # ~nosuchuser, a link loop: the written form only
        pass
    written = os.path.abspath(path)
    return forms + [written] if written not in forms else forms


def _undecodable(name: str) -> bool:
    """Whether ``name`` holds bytes that are not UTF-8 (no indexed path does)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def plan_forget(store: Store, folders: Sequence[str]) -> ForgetPlan:
    """What forgetting ``folders`` would remove; changes nothing.

    :raises NothingIndexed: a folder holds no indexed image (the message lists the indexed
        folders); nothing is planned for the others either.
    :raises SearchEngineError: no folder given, or a name that cannot be a folder.
    """
    if not folders:
        raise SearchEngineError("name at least one folder to forget")
    paths: dict[str, int] = {}
    counted, empty, comes_back = [], [], []
    roots = store.images.roots()
    for folder in folders:
        forms = _forms(folder)
        found = [(form, store.images.rows_under(form)) for form in forms]
        rows = {p: r.id for _, under in found for p, r in under.items()}
        if not rows:
            empty.append(folder)
            continue
        shown = next(form for form, under in found if under)  # the form it is indexed under
        counted.append((shown, len(rows)))
        paths.update(rows)
        if _on_disk(shown):  # still on disk: an index run of a root around it adds it back
            comes_back += [(shown, r) for r in roots if shown.startswith(r.rstrip("/") + "/")]
    if empty:
        raise NothingIndexed(_nothing_message(store, empty, roots))
    return _with_user_data(store, tuple(counted), paths, tuple(comes_back))


def _on_disk(folder: str) -> bool:
    try:
        return Path(folder).is_dir()
    except OSError:  # a name too long, no permission: not a folder an index run would see
        return False


def _nothing_message(store: Store, empty: list[str], roots: list[str]) -> str:
    names = ", ".join(empty)
    hint = ""
    if len(empty) == 1 and store.images.resolve(empty[0]) is not None:
        hint = " (that is an image: forget takes folders)"
    have = f"the indexed folders are: {', '.join(roots)}" if roots else "the index holds no images"
    return f"nothing is indexed under {names}{hint}; {have}"


def _with_user_data(store: Store, folders: tuple, paths: dict[str, int], comes_back: tuple) -> ForgetPlan:
    """The plan, with the user data that would go (less what is handed over to copies)."""
    heirs = store.images.heirs(list(paths))
    ids = [i for i in paths.values() if i not in heirs]
    holders = {}
    for table in ("user_tags", "collection_items", "metadata"):
        holders[table] = {r[0] for r in rows_for(store.db, ids, f"SELECT DISTINCT image_id FROM {table}")}
    return ForgetPlan(
        folders=folders,
        paths=tuple(sorted(paths)),
        tagged=len(holders["user_tags"]),
        in_collections=len(holders["collection_items"]),
        with_metadata=len(holders["metadata"]),
        with_user_data=len(set().union(*holders.values())),
        handed_over=len(heirs),
        comes_back=comes_back,
        everything=len(paths) >= store.db.execute("SELECT count(*) FROM images").fetchone()[0],
    )


def forget(
    store: Store, folders: Sequence[str], *, confirmed: bool = False, agreed: int | None = None
) -> ForgetPlan:
    """Remove every image indexed under ``folders``; returns what was removed.

    Holds the index's writer lock (so it never races an index run of another process; a
    process running index runs in threads keeps them out itself, as the web service does),
    plans again inside the write transaction, deletes as an index run deletes vanished
    files, then refreshes the FAISS index and the duplicate groups.

    :param confirmed: drop user data too, or every image; without it, such a plan raises
        :class:`NeedsConfirmation` and nothing changes.
    :param agreed: with ``confirmed``, the images with user data the user saw in a plan and
        agreed to lose: more of them now (tagged meanwhile) raises :class:`NeedsConfirmation`.
    :raises IndexBusy: another process is updating the index.
    :raises NothingIndexed: a folder holds no indexed image (nothing changes).
    """
    with IndexLock(store.dir):
        store.ensure_sound()
        with store.writing():
            plan = plan_forget(store, folders)
            grew = agreed is not None and plan.with_user_data > agreed
            if plan.needs_confirmation and (not confirmed or grew):
                raise NeedsConfirmation(plan)
            store.images.delete_paths(list(plan.paths))
            store.duplicates.mark_pending()
        enc = store.encoder()
        if enc is not None:
            derived.refresh(store, enc.dim, DuplicateRule.of_index(store))
    return plan
