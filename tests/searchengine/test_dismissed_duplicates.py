"""Images the user marked "not duplicates" never group again: after regrouping, a reopen of
the index, a move of a file and a re-index; undoing the mark groups them again."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.duplicates import DuplicateRule, mark_not_duplicates, regroup, unmark_not_duplicates
from searchengine.errors import NotFound, SearchEngineError
from searchengine.store.db import Store
from searchengine.store.duplicates import split_groups
from searchengine.store.schema import MIGRATIONS, migrate
from tests.conftest import make_image, write_images


@pytest.fixture
def library(tmp_path, tiny_embedder):
    """``(root, index, ids by name)``: three copies of one photo and two other images, indexed."""
    root, index = tmp_path / "photos", tmp_path / "index"
    write_images(root, 2)
    photo = make_image(seed=7, size=(200, 160))
    photo.save(root / "orig.png")
    photo.resize((120, 96)).save(root / "copy.jpg", quality=70)
    photo.resize((160, 128)).save(root / "small.png")
    store = Store(index)
    Indexer(store, tiny_embedder).run(root)
    ids = {p.rsplit("/", 1)[-1]: i for i, p in store.db.execute("SELECT id, path FROM images")}
    store.close()
    return root, index, ids


def names(store) -> list[list[str]]:
    recs = store.images.by_id([i for g in store.duplicates.groups() for i in g])
    return [sorted(recs[i].path.rsplit("/", 1)[-1] for i in g) for g in store.duplicates.groups()]


def test_a_group_marked_not_duplicates_stays_apart(library, tiny_embedder):
    root, index, ids = library
    store = Store(index)
    assert names(store) == [["copy.jpg", "orig.png", "small.png"]]
    group = [ids["orig.png"], ids["copy.jpg"], ids["small.png"]]
    assert mark_not_duplicates(store, group) == 3
    assert names(store) == []  # at once: no group, no "copies" on a card
    assert store.duplicates.of(group) == {}
    assert mark_not_duplicates(store, group) == 0  # marked already

    regroup(store, DuplicateRule.of_index(store))  # found again: still apart
    assert names(store) == []
    regroup(store, DuplicateRule(hamming=6, hamming_loose=8))  # other thresholds: still apart
    assert names(store) == []
    store.close()

    store = Store(index)  # reopened
    regroup(store, DuplicateRule())
    assert names(store) == []
    store.close()

    (root / "copy.jpg").rename(root / "moved.jpg")  # a move: a new id, the same content
    store = Store(index)
    Indexer(store, tiny_embedder).run(root)
    assert names(store) == []
    moved = store.images.by_path(str((root / "moved.jpg").resolve())).id
    assert moved != ids["copy.jpg"]

    assert unmark_not_duplicates(store, [ids["orig.png"], moved, ids["small.png"]]) == 3
    assert names(store) == [["moved.jpg", "orig.png", "small.png"]]  # grouped again at once
    assert unmark_not_duplicates(store, [ids["orig.png"], moved]) == 0
    store.close()


def test_one_image_marked_apart_leaves_the_rest_of_its_group(library):
    _, index, ids = library
    store = Store(index)
    mark_not_duplicates(store, [ids["orig.png"], ids["copy.jpg"]], image=ids["small.png"])
    assert names(store) == [["copy.jpg", "orig.png"]]
    regroup(store, DuplicateRule())
    assert names(store) == [["copy.jpg", "orig.png"]]
    assert store.duplicates.of([ids["small.png"]]) == {}
    assert store.duplicates.of([ids["orig.png"]]) == {ids["orig.png"]: [ids["copy.jpg"]]}
    store.close()


def test_bad_marks_are_refused_and_change_nothing(library):
    _, index, ids = library
    store = Store(index)
    with pytest.raises(SearchEngineError, match="at least two"):
        mark_not_duplicates(store, [ids["orig.png"], ids["orig.png"]])
    with pytest.raises(NotFound, match="99999"):
        mark_not_duplicates(store, [ids["orig.png"], 99999])
    with pytest.raises(SearchEngineError, match="name the images"):
        mark_not_duplicates(store, [ids["orig.png"]], image=ids["orig.png"])
    assert store.duplicates.apart_count() == 0
    assert names(store) == [["copy.jpg", "orig.png", "small.png"]]
    store.close()


def test_split_groups_keeps_complete_groups():
    assert split_groups([[1, 2, 3]], set()) == [[1, 2, 3]]
    assert split_groups([[1, 2, 3]], {(1, 2)}) == [[1, 3]]  # 1 joins 3 first; 2 is left alone
    assert split_groups([[1, 2, 3], [7, 8]], {(1, 2), (1, 3), (2, 3)}) == [[7, 8]]
    assert split_groups([[1, 2, 3, 4]], {(1, 4), (2, 4), (3, 4)}) == [[1, 2, 3]]


def test_an_older_index_gains_the_table_and_keeps_everything(tmp_path):
    conn = sqlite3.connect(tmp_path / "index.db", isolation_level=None)
    migrate(conn, upto=len(MIGRATIONS) - 1)
    conn.execute(
        "INSERT INTO images(id, path, root, sha256, size, mtime_ns, status, indexed_at) "
        "VALUES (1, '/p/a.jpg', '/p', 'abc', 1, 1, 'ok', 'now')"
    )
    conn.execute("INSERT INTO user_tags VALUES (1, 'hero', 'now')")
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("SELECT count(*) FROM not_duplicates").fetchone() == (0,)
    assert conn.execute("SELECT tag FROM user_tags").fetchall() == [("hero",)]
    with pytest.raises(sqlite3.IntegrityError):  # pairs are stored in one order only
        conn.execute("INSERT INTO not_duplicates VALUES ('b', 'a', 'now')")


def test_the_cli_marks_and_unmarks_by_name(library):
    _, index, _ = library
    run = lambda *args: CliRunner().invoke(cli, ["duplicates", "--index", str(index), *args])  # noqa: E731
    r = run("--not-duplicates", "orig.png", "copy.jpg", "small.png", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["groups"] == []
    assert "marked 3 pairs as not duplicates (3 new)" in r.stderr
    assert json.loads(run("--json").stdout)["groups"] == []
    r = run("--not-duplicates", "--undo", "orig.png", "copy.jpg")
    assert r.exit_code == 0 and "took the mark off 1 pair" in r.stderr
    assert "1 group of near duplicates (2 images)" in r.stderr
    assert run("--not-duplicates", "--undo", "orig.png", "copy.jpg").exit_code == 1  # not marked now
    assert run("--not-duplicates", "orig.png").exit_code == 2  # one image
    assert run("orig.png", "copy.jpg").exit_code == 2  # images without --not-duplicates
    assert run("--not-duplicates", "orig.png", "nosuch.png").exit_code != 0
