"""OCR engines: read the text in an image as lines with boxes and confidences.

* ``rapidocr`` (default): PP-OCR detection, direction and recognition ONNX models
  shipped in the ``rapidocr`` wheel (Apache-2.0), run by onnxruntime. Latin with
  accents and Chinese.
* ``tesseract``: Debian's ``tesseract-ocr`` through its command line, for scripts
  rapidocr cannot read (``tesseract:rus+ell`` picks language packs).
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from PIL import Image

from searchengine.errors import ModelNotFound
from searchengine.records import OcrLine, OcrResult

log = logging.getLogger(__name__)

#: Longest side given to the OCR engine; receipts need more pixels than embedding.
OCR_SIDE = 2048


class RapidOcrEngine:
    """rapidocr 3.x with the detector capped at 960 px (about 4x faster, same output).

    One engine per thread: onnxruntime sessions are shared-safe, but rapidocr's
    pre- and post-processing keeps state, and one intra-op thread per engine lets
    the pipeline's workers use the cores side by side.
    """

    name = "rapidocr"

    def __init__(self, det_side: int = 960, min_score: float = 0.5) -> None:
        try:
            import rapidocr  # noqa: F401
        except ImportError as exc:
            raise ModelNotFound("OCR engine rapidocr is missing: pip install rapidocr onnxruntime") from exc
        self.params = {
            "Global.log_level": "error",
            "Global.text_score": min_score,
            "Det.limit_type": "max",
            "Det.limit_side_len": det_side,
            "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        }
        self.tag = f"pp-ocr-det{det_side}"
        self._local = threading.local()

    @property
    def id(self) -> str:
        return f"{self.name}:{self.tag}"

    def _engine(self):
        engine = getattr(self._local, "engine", None)
        if engine is None:
            from rapidocr import RapidOCR

            engine = self._local.engine = RapidOCR(params=self.params)
            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        return engine

    def read(self, image: Image.Image, scale: float = 1.0) -> OcrResult:
        """Read ``image`` (RGB); boxes are multiplied by ``scale`` (to original pixels)."""
        out = self._engine()(image.convert("RGB"))
        if not out.txts:
            return OcrResult()
        lines = []
        for text, score, box in zip(out.txts, out.scores, out.boxes, strict=True):
            if text.strip():
                corners = tuple((float(x) * scale, float(y) * scale) for x, y in box)
                lines.append(OcrLine(text.strip(), float(score), corners))
        return OcrResult(tuple(lines))


class TesseractEngine:
    """Debian's ``tesseract`` command line, TSV output grouped into lines."""

    name = "tesseract"

    def __init__(self, languages: str = "eng") -> None:
        if shutil.which("tesseract") is None:
            raise ModelNotFound(
                "OCR engine tesseract is not installed: apt-get install tesseract-ocr "
                "(plus tesseract-ocr-LANG packs, e.g. tesseract-ocr-rus tesseract-ocr-ell)"
            )
        self.languages = languages
        self.tag = languages

    @property
    def id(self) -> str:
        return f"{self.name}:{self.tag}"

    def read(self, image: Image.Image, scale: float = 1.0) -> OcrResult:
        """Read ``image``; boxes are multiplied by ``scale``."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "page.png"
            image.convert("RGB").save(path)
            proc = subprocess.run(
                ["tesseract", str(path), "stdout", "-l", self.languages, "tsv"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"tesseract failed: {proc.stderr.strip()[-300:]}")
        groups: dict[tuple, list[dict]] = {}
        for row in csv.DictReader(io.StringIO(proc.stdout), delimiter="\t", quoting=csv.QUOTE_NONE):
            if row.get("level") == "5" and (row.get("text") or "").strip():
                key = (int(row["block_num"]), int(row["par_num"]), int(row["line_num"]))
                groups.setdefault(key, []).append(row)
        lines = []
        for key in sorted(groups):
            words = groups[key]
            x0 = min(int(w["left"]) for w in words)
            y0 = min(int(w["top"]) for w in words)
            x1 = max(int(w["left"]) + int(w["width"]) for w in words)
            y1 = max(int(w["top"]) + int(w["height"]) for w in words)
            conf = sum(float(w["conf"]) for w in words) / len(words) / 100.0
            box = tuple((x * scale, y * scale) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))
            lines.append(OcrLine(" ".join(w["text"].strip() for w in words), conf, box))
        return OcrResult(tuple(lines))
