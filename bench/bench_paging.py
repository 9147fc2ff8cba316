"""Latency of page 1 and page 2 of the same query through the HTTP app (TestClient).

Page 2 repeats page 1's text: the service's query text cache should make it cheaper.

    python bench/bench_paging.py bench/out/service-index ../shared/datasets/flickr8k_dev1k
(the index is the one bench/bench_service.py builds)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from fastapi.testclient import TestClient

from searchengine.config import Settings
from web.app import create_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path)
    ap.add_argument("dataset", type=Path, help="flickr8k_dev1k: its captions are the queries")
    ap.add_argument("--queries", type=int, default=40)
    args = ap.parse_args()
    app = create_app(Settings(index_path=args.index))
    app.state.service.warm_up()
    client = TestClient(app, base_url="http://localhost")
    lines = (args.dataset / "annotations.jsonl").read_text().splitlines()[: args.queries]
    queries = [json.loads(line)["captions"][0] for line in lines]
    first, second = [], []
    for q in queries:
        for offset, out in ((0, first), (24, second)):
            t0 = time.perf_counter()
            client.get("/api/search", params={"q": q, "limit": 24, "offset": offset}).raise_for_status()
            out.append((time.perf_counter() - t0) * 1000)
    p1, p2 = statistics.median(first), statistics.median(second)
    print(f"page 1 p50 {p1:.1f} ms; page 2 (same text) p50 {p2:.1f} ms")


if __name__ == "__main__":
    main()
