"""``searchengine doctor``, damaged databases, full disks and ``index --rebuild``: user work survives.

A damaged page is made the way the fault report made it: 4 KB of random bytes written over
one page of one table, in the middle of a real index.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from searchengine.cli import cli
from searchengine.store.db import Store, database_problem
from tests.conftest import write_images

N_IMAGES = 120


def run(*args) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_spec) -> tuple[Path, Path]:
    """One index of N_IMAGES images (made once), with tags, a collection, metadata,
    captions and OCR text of the user's; returns (image folder, index folder)."""
    root = tmp_path_factory.mktemp("doctor")
    images, index = root / "imgs", root / "index"
    write_images(images, N_IMAGES)
    r = run(
        "index", images, "--index", index, "--model", tiny_spec, "--ocr", "none", "--captioner", "none", "-q"
    )
    assert r.exit_code == 0, r.output
    store = Store(index)
    ids = [i for (i,) in store.db.execute("SELECT id FROM images ORDER BY id")]
    for i in ids[::6]:
        store.library.add_tags(i, ["keepme", f"tag{i}"])
    store.library.add_to_collection("favourites", ids[3:60:4])
    store.library.set_metadata([(i, {"sku": f"SKU-{i:04d}"}) for i in ids[::5]], "import:catalog.csv")
    with store.db.atomic():
        for i in ids[::3]:  # OCR and captions: costly work that must survive too
            store.db.execute(
                "INSERT INTO captions(image_id, text, tags, model) VALUES (?, ?, '[]', 'test:1')",
                [i, f"caption of image {i}"],
            )
            store.db.execute(
                "INSERT INTO ocr(image_id, text, engine) VALUES (?, ?, 'test:1')", [i, f"OCR{i}"]
            )
    store.close()
    _checkpoint(index / "index.db")
    return images, index


@pytest.fixture
def index(built, tmp_path) -> Path:
    """A fresh copy of the built index for one test."""
    copy = tmp_path / "index"
    shutil.copytree(built[1], copy)
    return copy


def _checkpoint(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def user_data(index: Path) -> dict:
    """Every piece of user data, by image path (ids may be rebuilt, paths may not change)."""
    conn = sqlite3.connect(index / "index.db")
    out = {
        "tags": sorted(
            conn.execute("SELECT i.path, t.tag FROM user_tags t JOIN images i ON i.id = t.image_id")
        ),
        "collection": sorted(
            conn.execute("SELECT i.path FROM collection_items c JOIN images i ON i.id = c.image_id")
        ),
        "metadata": sorted(
            conn.execute("SELECT i.path, m.key, m.value FROM metadata m JOIN images i ON i.id = m.image_id")
        ),
        "captions": sorted(
            conn.execute("SELECT i.path, c.text FROM captions c JOIN images i ON i.id = c.image_id")
        ),
        "ocr": sorted(conn.execute("SELECT i.path, o.text FROM ocr o JOIN images i ON i.id = o.image_id")),
    }
    conn.close()
    return out


def damage(index: Path, table: str, where: float = 0.5) -> int:
    """Write 4 KB of random bytes over one page of ``table`` (the one ``where`` through it)."""
    db = index / "index.db"
    conn = sqlite3.connect(db)
    pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno", [table])]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    assert pages, table
    page = pages[min(int(len(pages) * where), len(pages) - 1)]
    with open(db, "r+b") as f:
        f.seek((page - 1) * page_size)
        f.write(random.Random(page).randbytes(page_size))
    return page


def keyword_hits(index: Path, query: str) -> list[str]:
    r = run("search", query, "--index", index, "--mode", "keyword", "--json", "-k", "100")
    assert r.exit_code == 0, r.output
    return [x["path"] for x in json.loads(r.stdout)["results"]]


def test_a_sound_index_passes(index):
    r = run("doctor", "--index", index)
    assert r.exit_code == 0, r.output
    assert "no problems found" in r.stdout
    data = json.loads(run("doctor", "--index", index, "--json").stdout)
    assert (
        data["healthy"]
        and data["findings"] == []
        and data["counts"]["tags"] == 2 * len(range(0, N_IMAGES, 6))
    )


def test_damaged_keyword_index_stops_index_and_repair_keeps_everything(built, index, tiny_spec):
    before = user_data(index)
    damage(index, "search_fts_data")
    r = run("index", built[0], "--index", index, "--model", tiny_spec, "--ocr", "none", "--captioner", "none")
    assert r.exit_code == 1
    assert "nothing was indexed" in r.stderr and f"searchengine doctor --index {index}" in r.stderr
    assert "unchanged" not in r.stderr

    r = run("doctor", "--index", index)
    assert r.exit_code == 1 and "search_fts" in r.stdout and "--repair would" in r.stdout
    r = run("doctor", "--index", index, "--repair")
    assert r.exit_code == 0, r.output
    assert "no problems found after the repair" in r.stdout
    assert user_data(index) == before
    assert len(list(index.glob("index.db.damaged-*"))) == 1  # the original is kept
    assert len(keyword_hits(index, "keepme")) == len(range(0, N_IMAGES, 6))
    sku, ocr = before["metadata"][0][2], before["ocr"][0][1]
    assert keyword_hits(index, sku) == [before["metadata"][0][0]]
    assert keyword_hits(index, ocr) == [before["ocr"][0][0]]
    r = run("search", "a red square", "--index", index, "--mode", "vector", "--json", "--min-score", "-1")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["results"]) == 10


def test_damaged_images_table_keeps_user_data_attached(built, index, tiny_spec):
    before = user_data(index)
    damage(index, "images")
    r = run("doctor", "--index", index, "--repair", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert not data["healthy"] and data["after"]["healthy"]
    assert "images" in data["damaged_tables"]
    assert user_data(index) == before  # lost rows rebuilt from the indexes: same paths, same data
    conn = sqlite3.connect(index / "index.db")
    rebuilt = conn.execute("SELECT count(*) FROM images WHERE status = 'failed'").fetchone()[0]
    conn.close()
    assert rebuilt > 0
    # the next run reads the rebuilt rows' files again; their user data stays with them
    r = run("index", built[0], "--index", index, "--ocr", "none", "--captioner", "none", "-q")
    assert r.exit_code == 0, r.output
    assert f"{rebuilt} embedded" in r.stderr and "0 failed" in r.stderr
    info = json.loads(run("info", "--index", index, "--json").stdout)
    assert info["ok"] == N_IMAGES and info["failed"] == 0 and info["vectors"] == N_IMAGES
    after = user_data(index)
    assert after == before  # OCR and captions too: the rows kept their content, so their text stays
    assert len(keyword_hits(index, "keepme")) == len(range(0, N_IMAGES, 6))
    assert run("doctor", "--index", index).exit_code == 0


def test_damaged_embeddings_are_marked_for_the_next_run(built, index):
    before = user_data(index)
    damage(index, "embeddings")
    r = run("doctor", "--index", index, "--repair")
    assert r.exit_code == 0, r.output
    assert user_data(index) == before
    r = run("index", built[0], "--index", index, "--ocr", "none", "--captioner", "none", "-q")
    assert r.exit_code == 0, r.output
    info = json.loads(run("info", "--index", index, "--json").stdout)
    assert info["ok"] == info["vectors"] == N_IMAGES
    assert user_data(index) == before  # OCR and captions of the re-read images too
    assert keyword_hits(index, before["ocr"][0][1]) == [before["ocr"][0][0]]


def test_stale_faiss_and_dead_temporaries_are_found_and_repaired(index):
    dead = index / f".vectors.faiss.999999999-{uuid.uuid4().hex[:8]}.tmp"
    dead.write_bytes(b"x" * 1000)
    (index / "vectors.faiss").unlink()
    r = run("doctor", "--index", index)
    assert r.exit_code == 1
    assert "vectors.faiss is missing" in r.stdout and "temporary file" in r.stdout
    r = run("doctor", "--index", index, "--repair")
    assert r.exit_code == 0, r.output
    assert not dead.exists() and (index / "vectors.faiss").is_file()
    assert run("doctor", "--index", index).exit_code == 0


def test_corrupt_faiss_bytes_are_reported(index):
    with open(index / "vectors.faiss", "r+b") as f:
        f.seek(2000)
        f.write(random.Random(0).randbytes(4096))
    r = run("doctor", "--index", index)
    assert r.exit_code == 1 and "vectors.faiss is damaged" in r.stdout
    assert run("doctor", "--index", index, "--repair").exit_code == 0
    assert run("doctor", "--index", index).exit_code == 0


def test_rebuild_keeps_user_data(built, index, tiny_spec_other):
    before = user_data(index)
    r = run(
        "index", built[0], "--index", index, "--model", tiny_spec_other, "--rebuild", "-q", "--ocr", "none"
    )
    assert r.exit_code == 0, r.output
    assert f"{N_IMAGES} images embedded again" in r.stderr
    assert user_data(index) == before
    info = json.loads(run("info", "--index", index, "--json").stdout)
    assert info["ok"] == info["vectors"] == N_IMAGES
    r = run("search", "a red square", "--index", index, "--json", "--min-score", "-1")
    assert json.loads(r.stdout)["encoder"] == "clip:se-tiny-b:random"
    assert len(keyword_hits(index, "keepme")) == len(range(0, N_IMAGES, 6))


def test_messages_point_to_doctor_never_to_destroying_work():
    broken = database_problem(sqlite3.DatabaseError("database disk image is malformed"), "/x/idx")
    assert "searchengine doctor --index /x/idx" in broken and "--repair" in broken
    assert "re-index" not in broken and "another --index" not in broken and "delete" not in broken
    full = database_problem(sqlite3.OperationalError("database or disk is full"), "/tmp")
    assert full.startswith("disk full: free some space on /") and full.endswith("nothing was lost")
    assert "(it holds /tmp)" in full
    ro = database_problem(sqlite3.OperationalError("attempt to write a readonly database"), "/x/idx")
    assert "read-only" in ro and "nothing was changed" in ro and "damaged" not in ro


def test_disk_full_mid_run_keeps_the_committed_batches(monkeypatch, tmp_path, tiny_spec):
    """A simulated ENOSPC on the third batch: the two committed before stay, and it says so."""
    from searchengine.store.images import Images

    write_images(tmp_path / "imgs", 40)
    real, calls = Images.write_batch, []

    def full_on_third(self, writes):
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, writes)

    monkeypatch.setattr(Images, "write_batch", full_on_third)
    index = tmp_path / "index"
    r = run("index", tmp_path / "imgs", "--index", index, "--model", tiny_spec, "--batch-size", "8", "-q")
    assert r.exit_code == 1
    assert "disk full: free some space on" in r.stderr and "nothing was lost" in r.stderr
    assert "unusable" not in r.stderr and "Traceback" not in r.output
    monkeypatch.setattr(Images, "write_batch", real)
    info = json.loads(run("info", "--index", index, "--json").stdout)
    assert info["ok"] == 16  # two batches of 8 committed
    r = run("index", tmp_path / "imgs", "--index", index, "-q")
    assert r.exit_code == 0 and "24 embedded" in r.stderr


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        )
    except OSError:
        return False
    return done.returncode == 0


def test_a_really_full_disk_says_disk_full_and_loses_nothing(tmp_path, tiny_spec):
    """On a small tmpfs (where this user may mount one): fill it, index, read what was kept."""
    disk = tmp_path / "small"
    if not _mount_tmpfs(disk, "3m"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        write_images(tmp_path / "imgs", 60)
        index = disk / "index"
        r = run("index", tmp_path / "imgs", "--index", index, "--model", tiny_spec, "--ocr", "none", "-q")
        assert r.exit_code == 0, r.output
        _fill(disk / "filler")
        write_images(tmp_path / "imgs", 200, prefix="more", start=100)
        r = run("index", tmp_path / "imgs", "--index", index, "--ocr", "none", "--captioner", "none", "-q")
        assert r.exit_code == 1, r.output
        assert "disk full: free some space on" in r.stderr and "nothing was lost" in r.stderr
        assert "Traceback" not in r.output
        (disk / "filler").unlink()
        info = json.loads(run("info", "--index", index, "--json").stdout)
        assert info["ok"] >= 60 and info["vectors"] == info["ok"]
        assert run("doctor", "--index", index).exit_code == 0
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(path: Path) -> None:
    """Write to ``path`` until the disk is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_rows_pointing_at_nothing_are_found_and_kept_aside(index):
    conn = sqlite3.connect(index / "index.db")
    conn.execute("INSERT INTO user_tags(image_id, tag, added_at) VALUES (999999, 'lost', 'now')")
    conn.commit()
    conn.close()
    r = run("doctor", "--index", index)
    assert r.exit_code == 1 and "1 row(s) in user_tags point at images" in r.stdout
    r = run("doctor", "--index", index, "--repair")
    assert r.exit_code == 0, r.output
    assert "1 row(s) of user_tags" in r.stdout  # said, and still in the kept copy
    kept = next(index.glob("index.db.damaged-*"))
    conn = sqlite3.connect(kept)
    assert conn.execute("SELECT count(*) FROM user_tags WHERE tag = 'lost'").fetchone()[0] == 1
    conn.close()


def test_an_unreadable_file_is_left_alone(tmp_path):
    (tmp_path / "index.db").write_bytes(random.Random(1).randbytes(40_000))
    before = (tmp_path / "index.db").read_bytes()
    r = run("doctor", "--index", tmp_path, "--repair")
    assert r.exit_code == 1 and "cannot be read at all" in r.stdout and "nothing was changed" in r.stdout
    assert (tmp_path / "index.db").read_bytes() == before


def _stage_rows(conn: sqlite3.Connection, image_id: int) -> dict:
    return {
        t: sorted(conn.execute(f"SELECT * FROM {t} WHERE image_id = ?", [image_id]).fetchall())
        for t in ("ocr", "ocr_lines", "captions", "stages")
    }


def test_a_row_read_again_with_the_same_content_keeps_its_own_text(index):
    """A row marked failed by a repair, read again: the run plans to copy its OCR and caption
    from the stored outputs of that content, which are its own; the write must not drop them."""
    from searchengine.store.images import ImageWrite

    store = Store(index)
    try:
        image_id, path, sha = store.db.execute(
            "SELECT i.id, i.path, i.sha256 FROM images i JOIN ocr o ON o.image_id = i.id LIMIT 1"
        ).fetchone()
        with store.db.atomic():
            for stage in ("ocr", "caption"):
                store.db.execute(
                    "INSERT OR REPLACE INTO stages(image_id, stage, tool) VALUES (?, ?, 'test:1')",
                    [image_id, stage],
                )
            store.db.execute(
                "UPDATE images SET status = 'failed', error = 'x', mtime_ns = -1 WHERE id = ?", [image_id]
            )
        before = _stage_rows(store.db.conn, image_id)
        assert before["ocr"] and before["captions"]
        tools = store.images.text_tools_by_hash()[sha]
        assert tools["ocr"] == tools["caption"] == "test:1"  # the donor the run finds is itself
        row = {"path": path, "root": str(Path(path).parent), "sha256": sha, "size": 1, "mtime_ns": 1}
        row.update(status="ok", error=None)
        copy = {"ocr": "test:1", "caption": "test:1"}
        store.images.write_batch([ImageWrite(path, row=row, vector=b"\0" * 8, reset=True, copy_stages=copy)])
        assert _stage_rows(store.db.conn, image_id) == before
        # new content: the old text goes
        row["sha256"] = "0" * 64
        store.images.write_batch([ImageWrite(path, row=row, vector=b"\0" * 8, reset=True)])
        assert not any(_stage_rows(store.db.conn, image_id).values())
    finally:
        store.close()


def test_a_keyword_only_problem_is_repaired(index):
    before = user_data(index)
    conn = sqlite3.connect(index / "index.db")
    image_id, path = conn.execute(
        "SELECT i.id, i.path FROM images i JOIN user_tags t ON t.image_id = i.id"
    ).fetchone()
    conn.execute("DELETE FROM search_fts WHERE rowid = ?", [image_id])
    conn.commit()
    conn.close()
    assert path not in keyword_hits(index, "keepme")
    r = run("doctor", "--index", index)
    assert r.exit_code == 1 and "problem (keyword index)" in r.stdout and "problem (database)" not in r.stdout
    r = run("doctor", "--index", index, "--repair")
    assert r.exit_code == 0, r.output
    assert "derived" in r.stdout and "no problems found after the repair" in r.stdout
    assert run("doctor", "--index", index).exit_code == 0
    assert user_data(index) == before
    assert path in keyword_hits(index, "keepme")
    assert len(keyword_hits(index, "keepme")) == len(range(0, N_IMAGES, 6))


def test_damaged_keyword_data_is_dropped_and_derived_again(index, monkeypatch):
    """When even deleting from the keyword index fails, it is made again from the schema."""
    from searchengine import doctor

    conn = sqlite3.connect(index / "index.db", isolation_level=None)
    conn.execute("BEGIN")
    real = conn.execute

    class Failing:
        def execute(self, sql, *args):
            if sql == "DELETE FROM search_fts":
                raise sqlite3.DatabaseError("database disk image is malformed")
            return real(sql, *args)

    doctor._empty_keywords(Failing())
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM search_fts").fetchone()[0] == 0
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'search_fts'").fetchone()[0]
    assert "meta" in sql and "remove_diacritics 2" in sql
    conn.close()
    assert doctor.rederive_keywords(index / "index.db") == N_IMAGES
    assert len(keyword_hits(index, "keepme")) == len(range(0, N_IMAGES, 6))


def test_keyword_index_out_of_step_with_its_content_is_repaired(index):
    """A keyword index whose words no longer match its stored text: deleting by the stored
    text leaves stray words behind, so the repair rebuilds the index itself."""
    before = user_data(index)
    conn = sqlite3.connect(index / "index.db")
    image_id, path = conn.execute(
        "SELECT i.id, i.path FROM images i JOIN user_tags t ON t.image_id = i.id"
    ).fetchone()
    conn.execute("UPDATE search_fts_content SET c3 = '' WHERE id = ?", [image_id])  # c3: tags
    conn.commit()
    conn.close()
    r = run("doctor", "--index", index)
    assert r.exit_code == 1 and "problem (keyword index)" in r.stdout, r.output
    r = run("doctor", "--index", index, "--repair")
    assert r.exit_code == 0, r.output
    assert "no problems found after the repair" in r.stdout
    assert run("doctor", "--index", index).exit_code == 0
    assert user_data(index) == before
    assert path in keyword_hits(index, "keepme")
    assert len(keyword_hits(index, "keepme")) == len(range(0, N_IMAGES, 6))


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "copy"])
def test_two_repairs_in_one_second_keep_both_damaged_files(index, monkeypatch, links):
    """A kept damaged file is the only copy of the rows that could not be read: a second
    repair with the same time stamp keeps its own under another name, and a stale check
    (another repair got there first) salvages nothing."""
    import hashlib

    from searchengine import doctor
    from searchengine.store import repair as salvage_module

    monkeypatch.setattr(salvage_module, "_stamp", lambda: "20261202-040000")
    if not links:

        def no_links(src, dest):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(salvage_module.os, "link", no_links)
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest()  # noqa: E731
    damage(index, "user_tags")
    first = digest(index / "index.db")
    stale = doctor.examine(index)
    doctor.repair(index, stale)
    assert doctor.repair(index, stale) == [
        "nothing was changed: the index checks out now (repaired meanwhile by another run?)"
    ]
    assert [p.name for p in index.glob("index.db.damaged-*")] == ["index.db.damaged-20261202-040000"]
    _checkpoint(index / "index.db")
    damage(index, "user_tags", 0.2)
    second = digest(index / "index.db")
    doctor.repair(index, doctor.examine(index))
    kept = sorted(index.glob("index.db.damaged-*"))
    assert [p.name for p in kept] == [
        "index.db.damaged-20261202-040000",
        "index.db.damaged-20261202-040000-2",
    ]
    assert [digest(p) for p in kept] == [first, second]
    assert doctor.examine(index).healthy


def test_a_backup_that_fails_midway_is_removed_and_the_original_stays(index, monkeypatch):
    """A disk that fills while the damaged file is copied aside: no half copy is left behind
    under the kept name, and index.db is still the original."""
    from searchengine import doctor
    from searchengine.store import repair as salvage_module

    def no_links(src, dest):
        raise OSError(18, "Invalid cross-device link")

    def full(fin, fout):
        fout.write(fin.read(4096))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(salvage_module.os, "link", no_links)
    monkeypatch.setattr(salvage_module.shutil, "copyfileobj", full)
    damage(index, "user_tags")
    original = (index / "index.db").read_bytes()
    with pytest.raises(OSError, match="No space"):
        doctor.repair(index, doctor.examine(index))
    assert list(index.glob("index.db.damaged-*")) == [] and list(index.glob("*.salvage-*")) == []
    assert (index / "index.db").read_bytes() == original


def test_a_repair_says_which_rows_it_could_not_read(index):
    """Rows on a damaged page are lost to the repaired index: the summary (and --json) says
    which table lost them and where they still are."""
    store = Store(index)
    with store.db.atomic():  # tags over many pages: a damaged one in the middle loses some
        for i in range(1, N_IMAGES + 1):
            store.db.execute(
                "INSERT INTO user_tags(image_id, tag, added_at) VALUES (?, ?, 'now')",
                [i, "long" * 80 + str(i)],
            )
    store.close()
    _checkpoint(index / "index.db")
    before = user_data(index)["tags"]
    damage(index, "user_tags")
    r = run("doctor", "--index", index, "--repair", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    kept = next(index.glob("index.db.damaged-*")).name
    assert 0 < len(user_data(index)["tags"]) < len(before)
    lost = [line for line in data["repaired"] if "could not be read" in line]
    assert lost == [
        f"some rows of user_tags could not be read (1 damaged stretch(es)); they remain in {kept}"
    ]


def test_writers_are_kept_out_during_a_salvage(index):
    """serve, import and tag are not stopped by the index lock: while the damaged file is
    copied and swapped they get "busy", so nothing they write lands in the file being replaced."""
    from searchengine import doctor

    damage(index, "user_tags")
    report = doctor.examine(index)
    assert "database" in report.areas()
    seen = []

    def write_meanwhile(line: str) -> None:
        if seen:
            return
        writer = sqlite3.connect(index / "index.db", timeout=0, isolation_level=None)
        try:
            writer.execute("INSERT INTO collections(name, created_at) VALUES ('during', 'now')")
            seen.append("written")
        except sqlite3.OperationalError as exc:
            seen.append(str(exc))
        finally:
            writer.close()

    done = doctor.repair(index, report, progress=write_meanwhile)
    assert seen == ["database is locked"], seen
    assert any("other writers were kept out" in line for line in done), done
    conn = sqlite3.connect(index / "index.db")  # after the swap, writes go to the new file
    conn.execute("INSERT INTO collections(name, created_at) VALUES ('after', 'now')")
    conn.commit()
    conn.close()
    assert doctor.examine(index).healthy
    conn = sqlite3.connect(index / "index.db")
    names = {n for (n,) in conn.execute("SELECT name FROM collections")}
    conn.close()
    assert "after" in names and "during" not in names


def test_a_read_only_database_is_checked_not_called_damaged(index):
    from searchengine import doctor

    conn = sqlite3.connect(
        f"{(index / 'index.db').absolute().as_uri()}?mode=ro", uri=True, isolation_level=None
    )
    report = doctor.Checkup(str(index))
    doctor._check_keywords(conn, report)
    conn.close()
    assert report.healthy, report.findings
    assert any("read-only" in n for n in report.notes), report.notes


def test_an_index_in_a_read_only_folder_is_examined(index, monkeypatch):
    """No -shm file can be made there: examine opens it read-only and checks what it can."""
    from searchengine import doctor

    real = sqlite3.connect
    opened = []

    def no_shm(target, *args, **kwargs):  # what SQLite says for a WAL file whose -shm cannot be made
        opened.append(target.rsplit("?", 1)[-1])
        return _Unopenable() if target.endswith("?mode=rw") else real(target, *args, **kwargs)

    monkeypatch.setattr(doctor.sqlite3, "connect", no_shm)
    report = doctor.examine(index)
    assert opened[:2] == ["mode=rw", "mode=ro"]
    assert report.healthy, report.findings
    assert not report.unreadable and report.counts["tags"] == 2 * len(range(0, N_IMAGES, 6))
    assert any("read-only" in n for n in report.notes), report.notes


class _Unopenable:
    def execute(self, *args):
        raise sqlite3.OperationalError("unable to open database file")

    def close(self):
        pass


def test_a_faiss_save_that_fails_is_said_honestly(index, monkeypatch):
    import errno

    from searchengine import doctor
    from searchengine.store import vector_file

    (index / "vectors.faiss").unlink()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vector_file, "save", full)
    report = doctor.examine(index)
    done = doctor.repair(index, report)
    assert not any("built vectors.faiss again" in line for line in done), done
    assert any("could NOT be saved" in line and "disk full: free some space" in line for line in done), done
    assert not doctor.examine(index).healthy
