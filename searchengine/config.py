"""Settings, read from the environment (prefix ``SE_``) and overridden by CLI flags.

| variable        | default                                   | meaning                         |
|-----------------|-------------------------------------------|---------------------------------|
| SE_INDEX        | $XDG_DATA_HOME/searchengine/index         | folder holding index.db + FAISS |
| SE_MODEL        | best encoder present offline              | encoder spec for new indexes    |
| SE_BATCH_SIZE   | 16                                        | images embedded per batch       |
| SE_MAX_PIXELS   | 100000000                                 | larger images are refused       |
| SE_CAPTIONER    | offline                                   | captioner spec, or none         |
| SE_OCR          | rapidocr                                  | OCR engine spec, or none        |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def default_index_path() -> Path:
    """Return the per-user default index folder (XDG data dir, like rclip)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "searchengine" / "index"


@dataclass(frozen=True)
class Settings:
    """Everything the core needs to know, built explicitly (no import-time global)."""

    index_path: Path = field(default_factory=default_index_path)
    model: str | None = None
    batch_size: int = 16
    max_pixels: int = 100_000_000
    captioner: str = "offline"
    ocr: str = "rapidocr"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``SE_*`` environment variables.

        :raises ValueError: a numeric variable is not a positive integer.
        """
        env = dict(os.environ if env is None else env)
        s = cls()
        if env.get("SE_INDEX"):
            s = replace(s, index_path=Path(env["SE_INDEX"]).expanduser())
        for key, attr in (("SE_MODEL", "model"), ("SE_CAPTIONER", "captioner"), ("SE_OCR", "ocr")):
            if env.get(key):
                s = replace(s, **{attr: env[key]})
        for key, attr in (("SE_BATCH_SIZE", "batch_size"), ("SE_MAX_PIXELS", "max_pixels")):
            if env.get(key):
                try:
                    value = int(env[key])
                except ValueError:
                    value = 0
                if value <= 0:
                    raise ValueError(f"{key} must be a positive integer, got {env[key]!r}")
                s = replace(s, **{attr: value})
        return s
