"""Scale benchmark: build, update, memory, disk, hybrid latency and recall of a synthetic catalogue.

Builds a synthetic shop catalogue of N images into ``OUT/nN/base`` once (SQLite rows, FTS5
documents, product metadata, duplicate signatures and the FAISS index, exactly as an index
run and a catalogue import write them, without decoding any image), then measures, each
phase in its own process so that its peak RSS is its own:

* ``rows``: writing the rows (``Images.write_batch``) and importing the metadata
  (``Library.set_metadata``), 5,000 images per transaction;
* ``faiss``: ``VectorIndex.rebuild`` (reading every vector from SQLite, building, saving);
* ``regroup``: the near-duplicate regrouping an index run ends with;
* ``add`` / ``delete``: 1,000 new images written, then 1,000 removed, on a copy of the
  base, each followed by ``derived.refresh`` as an index run (or ``forget``) calls it;
* ``serve``: a process that loads the saved index and the real offline text encoder and
  answers text queries through ``SearchEngine.run`` (the path of ``searchengine search``),
  unfiltered, with a broad filter (about 50% pass) and a selective one (about 1%);
* ``recall``: recall@10 of the saved index against exact search (``IndexFlatIP``) on
  the same synthetic queries, unfiltered and with both filters;
* ``vectors`` (only with ``--only vectors``): no SQLite, for sizes whose database takes too
  long to write: the index ``choose_index_key`` picks, built from the synthetic vectors in
  memory, its build time, size and peak RSS, and its recall with random 50% and 1% id filters.

Vectors: a two-level mixture on the 384-d sphere (2,000 topic centres, N/10 "products"
around them, images around their product), so nearest neighbours have structure as real
embeddings do; queries are fresh draws around existing products. Text: titles, brands,
colours and article types of fashion_products_3k recombined per image, with a price and
a SKU, so FTS postings and metadata filters cost what a shop catalogue's would.

    python bench/bench_scale.py --n 100000 --queries 200 --out-dir /tmp/scale
    python bench/bench_scale.py --n 1000000 --queries 200 --out-dir /tmp/scale --only vectors

Figures go to ``OUT/nN/results.json``; a phase already there is not run again (``--redo``
names phases to run again; deleting the folder starts over).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM = 384
TOPICS = 2000
PRODUCT_EVERY = 10  # images per product, on average
TOPIC_SPREAD, PRODUCT_SPREAD = 0.035, 0.025  # per-dimension gaussian noise
BATCH = 5000
CHANGE = 1000
PHASES = ("rows", "faiss", "regroup", "add", "delete", "serve", "http", "recall")
EXTRA = ("vectors",)  # run only when named with --only
BROAD = "price<=250"  # prices are uniform in [5, 500): 49.5% pass
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


# -- what the process used --------------------------------------------------------------
def peak_mb() -> float:
    """This process's peak resident set so far, MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    """This process's resident set now, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * (len(ordered) - 1) + 0.5))], 2)


# -- the synthetic catalogue --------------------------------------------------------------
class Catalogue:
    """Deterministic synthetic images: vectors, text, metadata; row ``i`` is always the same."""

    def __init__(self, n: int, datasets: Path) -> None:
        from searchengine.models.base import l2_normalize

        records = [json.loads(x) for x in (datasets / "fashion_products_3k" / "annotations.jsonl").open()]
        self.templates = [r for r in records if r.get("title") and r.get("attributes")]
        rng = np.random.default_rng(12345)
        topics = l2_normalize(rng.normal(size=(TOPICS, DIM))).astype(np.float32)
        self.products = max(1, n // PRODUCT_EVERY)
        of_topic = rng.integers(0, TOPICS, self.products)
        noise = rng.normal(scale=TOPIC_SPREAD, size=(self.products, DIM)).astype(np.float32)
        self.centres = l2_normalize(topics[of_topic] + noise).astype(np.float32)
        brands = [r["title"].split()[0].lower() for r in self.templates]
        share = {b: brands.count(b) / len(brands) for b in set(brands)}
        self.selective_brand = min(share, key=lambda b: (abs(share[b] - 0.01), b))
        self.selective_share = share[self.selective_brand]

    def product_of(self, start: int, count: int) -> np.ndarray:
        rng = np.random.default_rng([7, start])
        return rng.integers(0, self.products, count)

    def vectors(self, start: int, count: int) -> np.ndarray:
        """Unit vectors of images ``start .. start+count-1``."""
        from searchengine.models.base import l2_normalize

        rng = np.random.default_rng([11, start])
        base = self.centres[self.product_of(start, count)]
        return l2_normalize(base + rng.normal(scale=PRODUCT_SPREAD, size=base.shape)).astype(np.float32)

    def queries(self, q: int, seed: int = 99) -> np.ndarray:
        """Fresh draws around existing products (a new photo of a known item)."""
        from searchengine.models.base import l2_normalize

        rng = np.random.default_rng(seed)
        base = self.centres[rng.integers(0, self.products, q)]
        return l2_normalize(base + rng.normal(scale=PRODUCT_SPREAD, size=base.shape)).astype(np.float32)

    def text_queries(self, q: int, seed: int = 5) -> list[str]:
        """Shop-style text queries: 2-5 words of a product title, sometimes with its colour."""
        pick = random.Random(seed)
        out = []
        for _ in range(q):
            t = pick.choice(self.templates)
            words = [w for w in t["title"].split() if w.isalpha()]
            k = min(len(words), pick.randint(2, 5))
            start = pick.randint(0, len(words) - k)
            phrase = words[start : start + k]
            if pick.random() < 0.3:
                phrase = [t["attributes"].get("baseColour", "")] + phrase
            out.append(" ".join(w.lower() for w in phrase if w))
        return out

    def writes(self, start: int, count: int) -> tuple[list, list[tuple[str, dict[str, str]]]]:
        """``(ImageWrite list, [(path, metadata)])`` of images ``start .. start+count-1``."""
        from searchengine.duplicates import PHASH_STAGE, PHASH_TOOL
        from searchengine.records import Caption, OcrLine, OcrResult
        from searchengine.store.images import ImageWrite

        pick = random.Random(start)
        rng = np.random.default_rng([13, start])
        vecs = self.vectors(start, count)
        hashes = rng.integers(0, 256, size=(count, 8 + 192), dtype=np.uint8)
        writes, meta = [], []
        for j in range(count):
            i = start + j
            t = pick.choice(self.templates)
            a = t["attributes"]
            sku = f"{a.get('articleType', 'item')[:2].upper()}{i:07d}"
            path = f"/catalogue/{a.get('subCategory', 'misc').lower()}/{sku}.jpg"
            colour, kind = a.get("baseColour", ""), a.get("articleType", "")
            row = {
                "path": path, "root": "/catalogue", "sha256": f"{i:064x}", "size": 40_000 + i % 90_000,
                "mtime_ns": 1_600_000_000_000_000_000 + i, "width": 1080, "height": 1440,
                "format": "JPEG", "status": "ok", "error": None,
            }  # fmt: skip
            caption = Caption(f"a {colour} {kind}".lower(), tuple(x.lower() for x in (kind, colour) if x))
            lines = ()
            if pick.random() < 0.3:  # a label or a tag with words on it
                box = ((0, 0), (1, 0), (1, 1), (0, 1))
                lines = (
                    OcrLine(f"{t['title'].split()[0].upper()} {sku} SIZE {pick.choice('SMLX')}", 0.9, box),
                )
            sig = f"{hashes[j, :8].tobytes().hex()}-{hashes[j, 8:].tobytes().hex()}"
            stages = {
                "caption": ("synthetic", None),
                "ocr": ("synthetic", None),
                PHASH_STAGE: (PHASH_TOOL, None),
            }
            writes.append(
                ImageWrite(path, row=row, vector=vecs[j].tobytes(), caption=caption, ocr=OcrResult(lines),
                           phash=sig, stages=stages)
            )  # fmt: skip
            meta.append((path, self.metadata(t, sku, pick)))
        return writes, meta

    @staticmethod
    def metadata(t: dict, sku: str, pick: random.Random) -> dict[str, str]:
        a = t["attributes"]
        fields = {
            "title": t["title"], "brand": t["title"].split()[0], "colour": a.get("baseColour", ""),
            "article_type": a.get("articleType", ""), "gender": a.get("gender", ""),
            "season": a.get("season", ""), "year": a.get("year", ""), "usage": a.get("usage", ""),
            "price": f"{pick.uniform(5, 500):.2f}", "sku": sku,
        }  # fmt: skip
        return {k: v for k, v in fields.items() if v}


def write_images(store, cat: Catalogue, start: int, count: int) -> dict:
    """Write images ``start ..`` as an index run does, then import their metadata; timed apart."""
    rows_s = meta_s = 0.0
    for s in range(start, start + count, BATCH):
        writes, meta = cat.writes(s, min(BATCH, start + count - s))
        t0 = time.perf_counter()
        store.images.write_batch(writes)
        t1 = time.perf_counter()
        ids = dict(store.db.execute(
            "SELECT path, id FROM images WHERE path IN (SELECT value FROM json_each(?))",
            [json.dumps([p for p, _ in meta])],
        ).fetchall())  # fmt: skip
        store.library.set_metadata([(ids[p], m) for p, m in meta], "import:synthetic.csv")
        rows_s, meta_s = rows_s + t1 - t0, meta_s + time.perf_counter() - t1
    return {"rows_fts_s": round(rows_s, 2), "metadata_s": round(meta_s, 2)}


class InMemoryVectors:
    """Float vectors of ids 1..N held in memory, read as ``store.embeddings.of_many`` reads them."""

    def __init__(self, vecs: np.ndarray) -> None:
        self.vecs = vecs

    def of_many(self, image_ids: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(image_ids, dtype=np.int64) - 1
        return self.vecs[rows], np.ones(len(rows), dtype=bool)


# -- phases (each runs in its own process) -----------------------------------------------
def phase_rows(args, base: Path) -> dict:
    from searchengine.models.registry import create_embedder
    from searchengine.store.db import Store

    if base.exists():
        shutil.rmtree(base)
    cat = Catalogue(args.n, args.datasets)
    store = Store(base)
    store.bind_encoder(create_embedder("offline").id)
    out = write_images(store, cat, 0, args.n)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out["selective_brand"], out["selective_share"] = cat.selective_brand, round(cat.selective_share, 4)
    return out


def phase_faiss(args, base: Path) -> dict:
    from searchengine.store.db import Store
    from searchengine.store.vectors import VectorIndex

    store = Store(base)
    before = rss_mb()
    t0 = time.perf_counter()
    vi = VectorIndex.rebuild(store, DIM, strict=True)
    total = time.perf_counter() - t0
    peak = peak_mb()
    t0 = time.perf_counter()
    ids, vecs = store.embeddings.all(DIM)
    read_s = time.perf_counter() - t0
    del ids, vecs
    t0 = time.perf_counter()
    vi.save(store.dir)
    save_s = time.perf_counter() - t0
    return {
        "key": vi.key, "rebuild_s": round(total, 2), "read_all_s": round(read_s, 2),
        "save_s": round(save_s, 2), "build_s": round(total - read_s - save_s, 2),
        "rss_before_mb": before, "peak_mb": peak,
    }  # fmt: skip


def phase_regroup(args, base: Path) -> dict:
    from searchengine.duplicates import DEFAULT_RULE, regroup
    from searchengine.store.db import Store

    store = Store(base)
    t0 = time.perf_counter()
    groups = regroup(store, DEFAULT_RULE)
    return {"regroup_s": round(time.perf_counter() - t0, 2), "groups": len(groups), "peak_mb": peak_mb()}


def _refresh_timed(store) -> dict:
    """``derived.refresh`` as an index run calls it, its two parts timed apart."""
    from searchengine.duplicates import DuplicateRule, regroup
    from searchengine.store.vectors import VectorIndex

    t0 = time.perf_counter()
    done = VectorIndex.keep_up(store, DIM)
    t1 = time.perf_counter()
    regroup(store, DuplicateRule.of_index(store))
    t2 = time.perf_counter()
    return {"faiss_s": round(t1 - t0, 2), "faiss_done": done, "regroup_s": round(t2 - t1, 2)}


def _service_catch_up(cache, store) -> dict:
    """How long a service's index cache takes to swap in the store's new state, and whether it
    kept its main index (no reload)."""
    before = cache.current
    t0 = time.perf_counter()
    after = cache.get(store)
    return {
        "service_catch_up_s": round(time.perf_counter() - t0, 3),
        "service_reloaded": after.main is not before.main,
        "pending": after.condition()["pending"],
    }


def _merge_timed(store) -> dict:
    """The merge a writer runs once the changes beside the main index pass the bound: read the
    saved index, fold the changes in, save it (the cost that ``DELTA_MAX`` changes bring)."""
    from searchengine.store.vectors import VectorIndex

    t0 = time.perf_counter()
    vi = VectorIndex.open(store, DIM, strict=True)
    t1 = time.perf_counter()
    done = vi.merged(store, DIM)
    return {"merge_load_s": round(t1 - t0, 2), "merge_s": round(time.perf_counter() - t1, 2), "merge": done}


def phase_add(args, base: Path) -> dict:
    from searchengine.store.db import Store
    from searchengine.store.vectors import VectorCache

    work = base.parent / "work"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work)  # not timed: the base stays reusable
    store = Store(work)
    cat = Catalogue(args.n, args.datasets)
    cache = VectorCache(DIM)
    cache.get(Store(work))  # a service that searched before the run (not timed)
    t0 = time.perf_counter()
    with store.writing():
        out = write_images(store, cat, args.n, CHANGE)
    store.duplicates.mark_pending()
    out.update(_refresh_timed(store))
    out["total_s"] = round(time.perf_counter() - t0, 2)
    out.update(_service_catch_up(cache, Store(work)))
    out["peak_mb"] = peak_mb()
    out.update(_merge_timed(store))
    return out


def phase_delete(args, base: Path) -> dict:
    from searchengine.store.db import Store
    from searchengine.store.vectors import VectorCache

    store = Store(base.parent / "work")
    cache = VectorCache(DIM)
    cache.get(Store(store.dir))
    paths = [p for (p,) in store.db.execute("SELECT path FROM images ORDER BY id LIMIT ?", [CHANGE])]
    t0 = time.perf_counter()
    with store.writing():
        gone = store.images.delete_paths(paths)
        store.duplicates.mark_pending()
    out = {"sqlite_s": round(time.perf_counter() - t0, 2), "deleted": gone}
    out.update(_refresh_timed(store))
    out["total_s"] = round(time.perf_counter() - t0, 2)
    out.update(_service_catch_up(cache, Store(store.dir)))
    out["peak_mb"] = peak_mb()
    return out


def _latencies(engine, queries: list[str], where: list[str]) -> dict:
    from searchengine.search.request import build_request

    for q in queries[:5]:  # warm-up: caches, FTS pages
        engine.run(build_request(q, where=where))
    lat = []
    for q in queries:
        t = time.perf_counter()
        engine.run(build_request(q, where=where, limit=10))
        lat.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": pct(lat, 0.5), "p95_ms": pct(lat, 0.95), "mean_ms": round(statistics.fmean(lat), 2)}


def _breakdown(engine, queries: list[str], where: list[str]) -> dict:
    """Median ms of each step of a hybrid query: encoding, vector leg (filter included), keyword leg
    (filter included), coverage, evidence vectors."""
    from searchengine.query import parse_query
    from searchengine.search import legs, plan
    from searchengine.search.request import build_filters

    store, vectors, emb = engine.store, engine.vectors, engine.embedder
    filters = build_filters(where=where)
    depth = plan.depth(0, 10)
    steps: dict[str, list[float]] = {}

    def timed(name, fn):
        t = time.perf_counter()
        value = fn()
        steps.setdefault(name, []).append((time.perf_counter() - t) * 1000)
        return value

    for q in queries:
        parsed = parse_query(q)
        qvec = timed("encode", lambda: legs.query_vector(emb, store, parsed, None, None))  # noqa: B023
        hits = timed("vector_leg", lambda: legs.vector_leg(store, vectors, qvec, depth, filters, parsed))  # noqa: B023
        found = timed("keyword_leg", lambda: legs.keyword_leg(store, parsed, depth, filters))  # noqa: B023
        timed("coverage", lambda: legs.coverage(store, parsed, [i for i, _ in found]))  # noqa: B023
        timed("evidence_vectors", lambda: store.embeddings.of_many([i for i, _ in hits], DIM))  # noqa: B023
    return {k: round(statistics.median(v), 2) for k, v in steps.items()}


def phase_serve(args, base: Path) -> dict:
    from searchengine.models.registry import create_embedder
    from searchengine.search import SearchEngine
    from searchengine.search.request import build_request
    from searchengine.store.db import Store

    cat = Catalogue(args.n, args.datasets)
    queries = cat.text_queries(args.queries)
    selective = f"brand={cat.selective_brand}"
    start = rss_mb()
    embedder = create_embedder("offline")
    embedder.embed_texts(["warm up"])
    with_model = rss_mb()
    engine = SearchEngine(Store(base), embedder)
    t0 = time.perf_counter()
    engine.vectors  # noqa: B018 - loads (and checks) the saved FAISS file
    load_s = time.perf_counter() - t0
    with_index = rss_mb()
    t0 = time.perf_counter()
    engine.run(build_request(queries[0]))
    first_s = time.perf_counter() - t0
    out = {
        "rss_start_mb": start, "rss_model_mb": with_model, "rss_index_loaded_mb": with_index,
        "index_load_s": round(load_s, 2), "first_query_s": round(first_s, 2),
        "selective_filter": selective,
    }  # fmt: skip
    for name, where in (("none", []), ("broad", [BROAD]), ("selective", [selective])):
        if name not in args.cases:
            continue
        out[f"hybrid_{name}"] = _latencies(engine, queries, where)
        out[f"steps_{name}"] = _breakdown(engine, queries[: min(60, len(queries))], where)
    out["rss_end_mb"], out["peak_mb"] = rss_mb(), peak_mb()
    return out


def phase_http(args, base: Path) -> dict:
    """The memory of a real ``searchengine serve`` process answering the same queries over HTTP."""
    import socket
    import tempfile
    import urllib.parse
    import urllib.request

    cat = Catalogue(args.n, args.datasets)
    queries = cat.text_queries(min(args.queries, 100))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("searchengine")
    with tempfile.TemporaryDirectory() as root:
        cmd = [str(exe), "serve", "--index", str(base), "--port", str(port), "--root", root]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 300
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/health", timeout=5).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit(f"the server did not start: {server.stderr.read()}") from None
                    time.sleep(0.5)
            idle = _status(server.pid)
            lat = []
            for n, q in enumerate(queries):
                where = [("where", BROAD)] if n % 2 else []
                t0 = time.perf_counter()
                urllib.request.urlopen(
                    f"{url}/api/search?" + urllib.parse.urlencode([("q", q), *where]), timeout=60
                ).read()
                lat.append((time.perf_counter() - t0) * 1000)
            busy = _status(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    return {
        "rss_started_mb": idle["VmRSS"], "rss_after_queries_mb": busy["VmRSS"],
        "server_peak_mb": busy["VmHWM"],
        "p50_ms_half_broad": pct(lat, 0.5), "p95_ms_half_broad": pct(lat, 0.95),
    }  # fmt: skip


def _status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def phase_recall(args, base: Path) -> dict:
    import faiss

    from searchengine.search.legs import vector_leg
    from searchengine.search.request import build_filters
    from searchengine.store.db import Store
    from searchengine.store.vectors import VectorIndex

    cat = Catalogue(args.n, args.datasets)
    store = Store(base)
    vi = VectorIndex.open(store, DIM)
    ids, vecs = store.embeddings.all(DIM)
    qs = cat.queries(args.queries)
    out = {"key": vi.key}
    for name, where in (("none", []), ("broad", [BROAD]), ("selective", [f"brand={cat.selective_brand}"])):
        if name not in args.cases:
            continue
        allowed = store.images.filtered_ids(build_filters(where=where)) if where else None
        rows = np.arange(len(ids)) if allowed is None else np.searchsorted(ids, np.sort(allowed))
        exact = faiss.IndexFlatIP(DIM)
        exact.add(vecs[rows])
        t0 = time.perf_counter()
        truth = np.vstack([exact.search(q[None, :], 10)[1] for q in qs])
        exact_ms = (time.perf_counter() - t0) * 1000 / len(qs)
        truth_ids = ids[rows][truth]
        filters = build_filters(where=where) if where else None
        t0 = time.perf_counter()
        got = [[i for i, _ in vector_leg(store, vi, q[None, :], 10, filters, None)] for q in qs]
        ann_ms = (time.perf_counter() - t0) * 1000 / len(qs)
        hit = [len(set(g) & set(t.tolist())) / 10 for g, t in zip(got, truth_ids, strict=True)]
        out[name] = {
            "passing": int(len(rows)), "recall_at_10": round(float(np.mean(hit)), 4),
            "index_ms": round(ann_ms, 2), "exact_ms": round(exact_ms, 2),
        }  # fmt: skip
    out["peak_mb"] = peak_mb()
    return out


def phase_vectors(args, base: Path) -> dict:
    """Vectors only, no SQLite (for sizes whose database would take too long to write here):
    the FAISS index ``choose_index_key`` picks for N, built from the synthetic vectors in
    memory; its build time, size, peak RSS, and recall@10 against exact search, unfiltered
    and with random 50% and 1% id filters through ``VectorIndex.search``."""
    import faiss

    from searchengine.store.vectors import VectorIndex, build_index, choose_index_key

    cat = Catalogue(args.n, args.datasets)
    vecs = np.empty((args.n, DIM), dtype=np.float32)
    for s in range(0, args.n, 100_000):
        vecs[s : s + 100_000] = cat.vectors(s, min(100_000, args.n - s))
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    before = rss_mb()
    key = choose_index_key(args.n, DIM)
    t0 = time.perf_counter()
    vi = VectorIndex.of(build_index(key, ids, vecs), key, "synthetic")
    out = {"key": key, "build_s": round(time.perf_counter() - t0, 1), "rss_vectors_mb": before}
    out["rss_built_mb"], out["peak_build_mb"] = rss_mb(), peak_mb()
    out["index_bytes_per_image"] = round(len(faiss.serialize_index(vi.index)) / args.n)
    qs, rng = cat.queries(args.queries), np.random.default_rng(3)
    stored = InMemoryVectors(vecs)  # stands in for SQLite's float vectors in the exact re-rank
    for name, share in (("none", 1.0), ("broad", 0.5), ("selective", 0.01)):
        allowed = None if share == 1.0 else np.sort(rng.choice(ids, int(share * args.n), replace=False))
        rows = slice(None) if allowed is None else allowed - 1
        exact = faiss.IndexFlatIP(DIM)
        exact.add(vecs[rows])
        t0 = time.perf_counter()
        truth = np.vstack([exact.search(q[None, :], 10)[1] for q in qs])
        exact_ms = (time.perf_counter() - t0) * 1000 / len(qs)
        truth = (np.arange(args.n) if allowed is None else allowed - 1)[truth] + 1
        t0 = time.perf_counter()
        got = np.vstack([vi.search(q[None, :], 10, allowed=allowed, stored=stored)[1] for q in qs])
        ann_ms = (time.perf_counter() - t0) * 1000 / len(qs)
        hit = [len(set(g.tolist()) & set(t.tolist())) / 10 for g, t in zip(got, truth, strict=True)]
        out[name] = {
            "passing": len(ids) if allowed is None else len(allowed),
            "recall_at_10": round(float(np.mean(hit)), 4),
            "index_ms": round(ann_ms, 2), "exact_ms": round(exact_ms, 2),
        }  # fmt: skip
        del exact
    return out


def disk(base: Path, n: int) -> dict:
    """Bytes per image of the database (by table, from SQLite's dbstat) and the FAISS file."""
    db, faiss_file = base / "index.db", base / "vectors.faiss"
    out = {"db_bytes_per_image": round(db.stat().st_size / n), "faiss_bytes_per_image": 0}
    if faiss_file.is_file():
        out["faiss_bytes_per_image"] = round(faiss_file.stat().st_size / n)
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        conn.close()
    except sqlite3.DatabaseError as exc:
        out["by_table"] = f"dbstat unavailable: {exc}"
        return out
    groups: dict[str, int] = {}
    for name, size in rows:
        key = (
            "search_fts (all parts)"
            if name.startswith("search_fts") or name.startswith("sqlite_autoindex_search")
            else name
        )
        groups[key] = groups.get(key, 0) + size
    out["by_table"] = {
        k: round(v / n) for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v / n >= 1
    }
    return out


# -- driver --------------------------------------------------------------------------------
def run_phase(args, phase: str) -> dict:
    """Run one phase in a child process (its own peak RSS) and return its figures."""
    cmd = [sys.executable, __file__, "--n", str(args.n), "--queries", str(args.queries)]
    cmd += ["--out-dir", str(args.out_dir), "--datasets", str(args.datasets), "--phase", phase]
    cmd += ["--cases", *args.cases]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def _slash(*values: float, digits: int = 1) -> str:
    return " / ".join(f"{v:,.{digits}f}" for v in values)


def report(n: int, r: dict) -> None:
    """Print the figures as markdown."""
    rows, fa, rg, add, rm, sv = (r[k] for k in ("rows", "faiss", "regroup", "add", "delete", "serve"))
    full = rows["rows_fts_s"] + rows["metadata_s"] + fa["rebuild_s"] + rg["regroup_s"]
    print(f"\n### {n:,} images\n")
    print("| figure | value |\n|---|---:|")
    lines = [
        ("rows + FTS5 (write_batch) / metadata import (10 fields)",
         _slash(rows["rows_fts_s"], rows["metadata_s"]) + " s"),
        (f"FAISS rebuild ({fa['key']}): read from SQLite / build / save",
         _slash(fa["read_all_s"], fa["build_s"], fa["save_s"]) + " s"),
        ("duplicate regroup", f"{rg['regroup_s']:.1f} s"),
        ("**full build**", f"**{full:.0f} s**"),
        (f"add 1,000: SQLite / FAISS ({add.get('faiss_done', 'rebuilt')}) / regroup",
         _slash(add["rows_fts_s"] + add["metadata_s"], add["faiss_s"], add["regroup_s"]) + " s"),
        ("**add 1,000, total (share of the full build)**",
         f"**{add['total_s']:.1f} s ({100 * add['total_s'] / full:.0f}%)**"),
        ("a service's index after the add: catch-up / main index reloaded",
         f"{add.get('service_catch_up_s', '-')} s / {add.get('service_reloaded', '-')}"),
        ("merging the changes when due: read the saved index / merge + save",
         _slash(add.get("merge_load_s", 0), add.get("merge_s", 0)) + f" s ({add.get('merge', '-')})"),
        (f"delete 1,000: SQLite / FAISS ({rm.get('faiss_done', 'rebuilt')}) / regroup",
         _slash(rm["sqlite_s"], rm["faiss_s"], rm["regroup_s"]) + " s"),
        ("peak RSS: rows / FAISS rebuild / regroup / add",
         _slash(rows["peak_mb"], fa["peak_mb"], rg["peak_mb"], add["peak_mb"], digits=0) + " MiB"),
        ("serving process RSS: model / + index / after queries (peak)",
         _slash(sv["rss_model_mb"], sv["rss_index_loaded_mb"], sv["rss_end_mb"], digits=0)
         + f" ({sv['peak_mb']:,.0f}) MiB"),
        ("disk per image: index.db / vectors.faiss",
         _slash(r["disk"]["db_bytes_per_image"], r["disk"]["faiss_bytes_per_image"], digits=0) + " B"),
    ]  # fmt: skip
    for name, value in lines:
        print(f"| {name} | {value} |")
    print("\n| query | p50 (ms) | p95 (ms) | recall@10 vs exact |\n|---|---:|---:|---:|")
    for name, label in (("none", "hybrid, no filter"), ("broad", f"hybrid, `{BROAD}`"),
                        ("selective", f"hybrid, `{sv['selective_filter']}`")):  # fmt: skip
        if f"hybrid_{name}" not in sv:
            continue
        h, rec = sv[f"hybrid_{name}"], r["recall"].get(name, {"passing": 0, "recall_at_10": "-"})
        print(
            f"| {label} ({rec['passing']:,} pass) | {h['p50_ms']} | {h['p95_ms']} | {rec['recall_at_10']} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/scale"))
    ap.add_argument("--datasets", type=Path, default=DATASETS, help="holds fashion_products_3k")
    ap.add_argument("--only", nargs="+", choices=PHASES + EXTRA, help="run these phases only")
    ap.add_argument("--redo", nargs="*", choices=PHASES, default=(), help="run these phases again")
    ap.add_argument("--cases", nargs="+", default=["none", "broad", "selective"], help="serve: filter cases")
    ap.add_argument("--phase", choices=PHASES + EXTRA, help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = args.out_dir / f"n{args.n}"
    base = folder / "base"
    if args.phase:  # a child: one phase, its figures as the last line
        figures = globals()[f"phase_{args.phase}"](args, base)
        figures.setdefault("peak_mb", peak_mb())
        print(json.dumps(figures), flush=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    import searchengine

    results["code"] = str(Path(searchengine.__file__).parent)  # the package measured
    redo = set(args.redo) | (
        {"faiss", "regroup", "add", "delete", "serve", "recall"} if "rows" in args.redo else set()
    )
    for phase in args.only or PHASES:
        if phase in results and phase not in redo:
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {phase} ...", file=sys.stderr, flush=True)
        results[phase] = run_phase(args, phase)
        print(f"  {json.dumps(results[phase])}", file=sys.stderr, flush=True)
        if phase in ("rows", "faiss"):
            results["disk"] = disk(base, args.n)
        path.write_text(json.dumps(results, indent=1))
    if all(p in results for p in PHASES):
        report(args.n, results)
    print(json.dumps(results.get("disk", {}), indent=1))


if __name__ == "__main__":
    main()
