"""Peak memory of ``searchengine serve`` under concurrent large query-image uploads.

Builds a temporary index of data/sample (offline encoder, no OCR or captions), serves
it with ``searchengine serve`` on loopback, and for S seconds drives it from U upload
clients, each posting a 7000x7000 (49 MP) image to ``POST /api/search`` (alternately
a JPEG and a highly compressible PNG, ~160 KB), plus T clients running text searches.
The server's resident memory is sampled from /proc; its peak (``VmHWM``) is reported
with the baseline after warm-up, the requests by kind and status, and the errors.
A 503 ("busy, try again") is the service's documented answer to a decode queue that
is too long; it is counted apart from errors (anything else that is not a 200).

    python bench/bench_uploads.py --seconds 60 --uploaders 16 --searchers 4

With ``--per-image``, it reports instead what one ``load_image`` of each kind of 49 MP
file adds to the peak memory of a fresh process (JPEG, RGB, RGBA and paletted PNG).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SIDE = 7000
QUERIES = ["a red square", "receipt", "shoes", "a sign", "texture", "document", "blue", "photo of a dog"]
#: Sent with every request: what a script (not a web page) can send; ignored by servers that need none.
HEADERS = {"X-Requested-With": "searchengine-bench"}


def make_images(folder: Path) -> list[tuple[str, bytes, str]]:
    """A 49 MP JPEG (smooth photo-like content) and a 49 MP PNG that compresses to ~160 KB."""
    small = Image.new("RGB", (70, 70))
    rng = random.Random(7)
    small.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(70 * 70)])
    photo = small.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    jpg = folder / "big.jpg"
    photo.save(jpg, quality=85)
    del photo
    flat = Image.new("RGB", (SIDE, SIDE), (240, 240, 240))
    flat.paste((200, 30, 30), (1000, 1000, 6000, 6000))
    png = folder / "big.png"
    flat.save(png, optimize=True)
    return [("big.jpg", jpg.read_bytes(), "image/jpeg"), ("big.png", png.read_bytes(), "image/png")]


#: Measures one decode in a fresh process: the rise of its VmHWM (KiB). Not ru_maxrss: a child
#: inherits its parent's, which has made the test images.
_ONE_DECODE = (
    "import re, sys; from pathlib import Path; from searchengine.imaging import load_image\n"
    "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1])\n"
    "h0 = hwm(); load_image(sys.argv[1]); print(hwm() - h0)"
)


def per_image(folder: Path) -> None:
    """Print the peak memory one decode of each kind of 49 MP file adds."""
    make_images(folder)
    flat = Image.open(folder / "big.png")
    flat.convert("RGBA").save(folder / "big-rgba.png")
    flat.convert("P").save(folder / "big-palette.png")
    print("| file (7000x7000) | bytes | peak RSS added by one decode |")
    print("|---|---:|---:|")
    for name in ("big.jpg", "big.png", "big-rgba.png", "big-palette.png"):
        path = folder / name
        out = subprocess.run(
            [sys.executable, "-c", _ONE_DECODE, str(path)], cwd=REPO, capture_output=True, text=True
        )
        out.check_returncode()
        print(f"| {name} | {path.stat().st_size:,} | {int(out.stdout) // 1024} MiB |")


def multipart(name: str, data: bytes, media: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
        f"Content-Type: {media}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


class Load:
    """The upload and search clients and what they saw."""

    def __init__(self, port: int, uploads: list[tuple[str, bytes, str]], deadline: float) -> None:
        self.port, self.uploads, self.deadline = port, uploads, deadline
        self.lock = threading.Lock()
        self.statuses: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.samples: list[str] = []

    def _one(self, kind: str, method: str, url: str, body=None, headers=None) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        t0 = time.perf_counter()
        try:
            conn.request(method, url, body=body, headers={**HEADERS, **(headers or {})})
            resp = conn.getresponse()
            text = resp.read()
            status = str(resp.status)
        except (OSError, http.client.HTTPException) as exc:
            status, text = exc.__class__.__name__, b""
        finally:
            conn.close()
        with self.lock:
            self.statuses[kind][status] += 1
            self.latency[kind].append(time.perf_counter() - t0)
            if status not in ("200", "503") and len(self.samples) < 5:
                self.samples.append(f"{kind} {status}: {text[:200]!r}")

    def uploader(self, n: int) -> None:
        i = n
        while time.monotonic() < self.deadline:
            name, data, media = self.uploads[i % len(self.uploads)]
            body, ctype = multipart(name, data, media)
            self._one(name, "POST", "/api/search?limit=5", body, {"Content-Type": ctype})
            i += 1

    def searcher(self, n: int) -> None:
        rng = random.Random(n)
        while time.monotonic() < self.deadline:
            q = rng.choice(QUERIES).replace(" ", "+")
            self._one("text", "GET", f"/api/search?q={q}&limit=10")


def serve(index: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "searchengine", "serve", "--index", str(index), "--port", str(port)],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/health", headers=HEADERS)
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--uploaders", type=int, default=16)
    ap.add_argument("--searchers", type=int, default=4)
    ap.add_argument("--per-image", action="store_true", help="measure one decode of each kind, no server")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as tmp:
        work = Path(tmp)
        if args.per_image:
            return per_image(work)
        uploads = make_images(work)
        index = work / "index"
        subprocess.run(
            [sys.executable, "-m", "searchengine", "index", str(REPO / "data" / "sample")]
            + ["--index", str(index), "--model", "offline", "--ocr", "none", "--captioner", "none", "-q"],
            check=True,
            cwd=REPO,
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = serve(index, port)
        try:
            Load(port, uploads, time.monotonic() + 1).searcher(0)  # warm-up: encoder, FAISS
            base = proc_status(server.pid)["VmRSS"]
            load = Load(port, uploads, time.monotonic() + args.seconds)
            threads = [threading.Thread(target=load.uploader, args=(i,)) for i in range(args.uploaders)]
            threads += [threading.Thread(target=load.searcher, args=(i,)) for i in range(args.searchers)]
            started = time.monotonic()
            for t in threads:
                t.start()
            peak_sampled = base
            while any(t.is_alive() for t in threads):
                peak_sampled = max(peak_sampled, proc_status(server.pid)["VmRSS"])
                time.sleep(0.1)
            elapsed = time.monotonic() - started
            hwm = proc_status(server.pid)["VmHWM"]
        finally:
            server.terminate()
            server.wait(30)
    report(args, uploads, base, max(hwm, peak_sampled), elapsed, load)


def report(args, uploads, base: int, peak: int, elapsed: float, load: Load) -> None:
    errors = sum(n for c in load.statuses.values() for s, n in c.items() if s not in ("200", "503"))
    busy = sum(c["503"] for c in load.statuses.values())
    sizes = ", ".join(f"{name} {len(data) / 1e6:.2f} MB" for name, data, _ in uploads)
    who = f"{args.uploaders} uploaders ({sizes}, {SIDE}x{SIDE}) + {args.searchers} searchers"
    print(f"{who}, {elapsed:.0f} s")
    print(f"server RSS after warm-up: {base} MiB; peak (VmHWM): {peak} MiB")
    print("| requests | 200 | 503 busy | errors | median s | max s |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind, counts in sorted(load.statuses.items()):
        lat = sorted(load.latency[kind])
        other = sum(n for s, n in counts.items() if s not in ("200", "503"))
        print(
            f"| {kind} | {counts['200']} | {counts['503']} | {other} "
            f"| {lat[len(lat) // 2]:.2f} | {lat[-1]:.2f} |"
        )
    print(f"errors: {errors}, busy: {busy}")
    for line in load.samples:
        print(f"  {line}")
    print(json.dumps({"base_mib": base, "peak_mib": peak, "errors": errors, "busy": busy}))


if __name__ == "__main__":
    main()
