"""Fixtures for the web app: a small indexed gallery with text, and clients over it."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from indexer.pipeline import Indexer
from searchengine.config import Settings
from searchengine.records import Caption, OcrLine, OcrResult
from searchengine.store.db import Store
from tests.conftest import make_image, write_images


class LabelOcr:
    """Reads a plain 64x48 image's colour name, OTHER elsewhere (a deterministic stand-in)."""

    id = "label-ocr:1"

    def read(self, image, scale=1.0):
        r, g, b = image.getpixel((0, 0))
        word = "OTHER"
        if image.size == (64, 48):
            word = "RED" if r > 150 else "BLUE"
        return OcrResult((OcrLine(f"{word} LABEL QX-{r:03d}", 0.93, ((2, 3), (30, 3), (30, 12), (2, 12))),))


class TagCaptioner:
    id = "tag-cap:1"

    def caption(self, images, texts=None):
        return [Caption(f"a square saying {t.lower()}", ("square", t.split()[0].lower())) for t in texts]


def build_gallery(root: Path, index: Path, embedder) -> None:
    """Index ``root`` (plain-colour and random images, a subfolder) with fake text stages."""
    write_images(root, 5)
    write_images(root / "sub", 3, prefix="nested", start=40)
    make_image((220, 20, 20), size=(64, 48)).save(root / "red.png")
    make_image((20, 20, 220), size=(64, 48)).save(root / "blue.jpg")
    store = Store(index)
    Indexer(store, embedder, captioner=TagCaptioner(), ocr=LabelOcr()).run(root)
    store.close()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, tiny_embedder):
    """``(root, index)``: an indexed folder shared by a module's read-only tests."""
    base = tmp_path_factory.mktemp("web-gallery")
    root, index = base / "photos", base / "index"
    build_gallery(root, index, tiny_embedder)
    return root, index


#: What the page sends: its own host, and the header no other site's page may send.
PAGE_LIKE = {"base_url": "http://localhost", "headers": {"X-Requested-With": "searchengine-page"}}


def make_client(index: Path, indexer_factory=Indexer.from_settings, **fields):
    """A client over an app on ``index``; ``fields`` override the environment's settings.

    Index runs use the real indexer (as ``searchengine serve``) unless ``indexer_factory``
    says otherwise (None: a service started without one). Like the page, the client
    sends ``X-Requested-With`` with every request, to ``localhost`` (the server answers
    to no other name by default).
    """
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from web.app import create_app

    settings = replace(Settings.from_env(), index_path=index, **fields)  # stages: SE_OCR, SE_CAPTIONER
    app = create_app(settings, indexer_factory=indexer_factory)
    return TestClient(app, raise_server_exceptions=False, **PAGE_LIKE)


@pytest.fixture(scope="module")
def client(gallery):
    client = make_client(gallery[1])
    yield client
    client.app.state.service.close()  # its decode threads go with the module


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
