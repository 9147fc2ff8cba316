"""CLI start-up: a command imports only what it needs (torch and friends cost seconds).

Each check runs the command in a fresh process and lists the heavy modules it imported;
the wall-clock figures are in bench/cli_startup.py.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, write_images

pytestmark = pytest.mark.slow

HEAVY = ("torch", "torchvision", "sentence_transformers", "transformers", "timm", "open_clip")

_DRIVER = """
import json, sys
from searchengine.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = [m for m in {heavy!r} if m in sys.modules]
print("\\n" + json.dumps({{"code": code, "heavy": heavy}}))
"""


def heavy_imports(args: list[str], env: dict) -> list[str]:
    """Run ``searchengine ARGS`` in a fresh process; return the heavy modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER.format(heavy=HEAVY), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["code"] in (0, None), done.stderr[-2000:]
    return out["heavy"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """An offline-encoder index of two images, with offline captions (the captioner reads the
    ImageNet labels) and no OCR."""
    tmp = tmp_path_factory.mktemp("startup")
    folder = tmp / "photos"
    write_images(folder, 2)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "xdg"), "SE_INDEX": str(tmp / "index")}
    env.update(SE_CAPTIONER="offline", SE_OCR="none")
    env.pop("SE_MODEL", None)
    done = subprocess.run(
        [sys.executable, "-m", "searchengine", "index", "-q", "--model", "offline", str(folder)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return folder, env


def test_unchanged_index_run_loads_no_model(indexed):
    folder, env = indexed
    assert heavy_imports(["index", "-q", str(folder)], env) == []


def test_search_with_the_offline_encoder_imports_no_torch(indexed):
    _, env = indexed
    assert heavy_imports(["search", "a red square"], env) == []
    assert heavy_imports(["search", "--mode", "keyword", "red"], env) == []


def test_info_and_models_import_no_torch(indexed):
    _, env = indexed
    assert heavy_imports(["info"], env) == []
    assert heavy_imports(["models"], env) == []


def test_known_clip_weights_agree_with_open_clip():
    """``models`` finds the default CLIP weights without importing open_clip: the table it
    uses instead must say what open_clip says."""
    import open_clip

    from searchengine.models.clip import KNOWN_PRETRAINED

    for (arch, tag), cfg in KNOWN_PRETRAINED.items():
        theirs = open_clip.get_pretrained_cfg(arch, tag)
        assert {k: theirs.get(k, "") for k in cfg} == cfg
