"""Load test of ``searchengine serve`` on loopback, idle and while an index run is in progress.

Serves an index of flickr8k_dev1k (1,000 photos, built once with the default offline
encoder, OCR and captions), then drives it from C client threads for S seconds each:
first idle, then while ``POST /api/index`` indexes another folder (fashion_products_3k,
3,000 images) in the same process. The mix is what the page does: 80% text searches
(real flickr captions), 10% "find similar" (``like=ID``), 10% image details. Reports
requests/s, p50/p95/p99 latency and errors, and how far the index run got meanwhile.

    python bench/bench_service.py ../shared/datasets --seconds 30 --concurrency 8
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

OUT = Path(__file__).parent / "out"


def request(conn: http.client.HTTPConnection, method: str, url: str, body=None, headers=None):
    conn.request(method, url, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, data


def get_json(port: int, url: str, method: str = "GET", body: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    payload = json.dumps(body).encode() if body is not None else None
    status, data = request(conn, method, url, payload, {"Content-Type": "application/json"})
    conn.close()
    return status, json.loads(data)


def load(port: int, seconds: float, concurrency: int, queries: list[str], ids: list[int]) -> dict:
    """Run the request mix from ``concurrency`` keep-alive clients; return the figures."""
    deadline = time.monotonic() + seconds
    lat: dict[str, list[float]] = {"search": [], "like": [], "detail": []}
    errors: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < 0.8:
                kind, url = "search", "/api/search?" + urllib.parse.urlencode({"q": rng.choice(queries)})
            elif roll < 0.9:
                kind, url = "like", f"/api/search?like={rng.choice(ids)}"
            else:
                kind, url = "detail", f"/api/images/{rng.choice(ids)}"
            t0 = time.perf_counter()
            try:
                status, _ = request(conn, "GET", url)
            except (OSError, http.client.HTTPException) as exc:
                status, conn = repr(exc), http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                if status == 200:
                    lat[kind].append(ms)
                else:
                    errors.append(f"{kind} {url}: {status}")
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    every = sorted(sum(lat.values(), []))

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))], 1) if values else float("nan")

    return {
        "seconds": round(elapsed, 1),
        "requests": len(every) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:5],
        "rps": round((len(every) + len(errors)) / elapsed, 1),
        "p50_ms": round(statistics.median(every), 1) if every else None,
        "p95_ms": pct(every, 0.95),
        "p99_ms": pct(every, 0.99),
        "by_kind": {
            k: {"n": len(v), "p50_ms": round(statistics.median(v), 1) if v else None} for k, v in lat.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", type=Path, help="../shared/datasets")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--index", type=Path, default=OUT / "service-index", help="base index, built once")
    args = ap.parse_args()

    searched = (args.datasets / "flickr8k_dev1k" / "images").resolve()
    indexed_meanwhile = (args.datasets / "fashion_products_3k" / "images").resolve()
    base = args.index
    exe = Path(sys.executable).with_name("searchengine")
    if not (base / "index.db").is_file():
        print(f"building the base index of {searched} (once)...", file=sys.stderr)
        subprocess.run([str(exe), "index", str(searched), "--index", str(base), "-q"], check=True)
    work = OUT / "service-index-run"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, work)  # the run adds fashion images to a copy; the base stays reusable

    queries = []
    for line in (args.datasets / "flickr8k_dev1k" / "annotations.jsonl").read_text().splitlines():
        queries += json.loads(line)["captions"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(exe), "serve", "--index", str(work), "--port", str(port)]
        + ["--root", str(searched), "--root", str(indexed_meanwhile)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, health = get_json(port, "/api/health")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.5)
        _, stats = get_json(port, "/api/stats")
        ids = list(range(1, stats["ok"] + 1))
        print(f"serving {stats['ok']} images on port {port}", file=sys.stderr)
        load(port, 3, args.concurrency, queries, ids)  # warm-up (thumbnails, caches), not reported
        idle = load(port, args.seconds, args.concurrency, queries, ids)
        print(f"idle: {idle}", file=sys.stderr)

        status, job = get_json(port, "/api/index", "POST", {"root": str(indexed_meanwhile)})
        assert status == 202, job
        while job["done"] == 0:  # wait until the run is embedding, past its scan
            time.sleep(0.5)
            _, job = get_json(port, "/api/index")
        before = job["done"]
        busy = load(port, args.seconds, args.concurrency, queries, ids)
        _, job = get_json(port, "/api/index")
        busy["indexing"] = {
            "state_at_end": job["state"],
            "images_indexed_during_load": job["done"] - before,
            "todo": job["todo"],
        }
        print(f"while indexing: {busy}", file=sys.stderr)
        result = {
            "concurrency": args.concurrency,
            "images": stats["ok"],
            "encoder": stats["encoder"],
            "idle": idle,
            "indexing": busy,
        }
        OUT.mkdir(exist_ok=True)
        (OUT / "service.json").write_text(json.dumps(result, indent=2))
        print("| state | requests | req/s | p50 ms | p95 ms | p99 ms | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in (("idle", idle), ("while indexing", busy)):
            print(
                f"| {name} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} "
                f"| {r['errors']} |"
            )
        print(
            f"\nindex run during the loaded window: {busy['indexing']['images_indexed_during_load']} images "
            f"indexed, state at the end: {busy['indexing']['state_at_end']}"
        )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
