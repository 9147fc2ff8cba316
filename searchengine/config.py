"""Settings, read from the environment (prefix ``SE_``) and overridden by CLI flags.

| variable        | default                                   | meaning                         |
|-----------------|-------------------------------------------|---------------------------------|
| SE_INDEX        | $XDG_DATA_HOME/searchengine/index         | folder holding index.db + FAISS |
| SE_MODEL        | best encoder present offline              | encoder spec for new indexes    |
| SE_BATCH_SIZE   | 16                                        | images embedded per batch       |
| SE_MAX_PIXELS   | 100000000                                 | larger images are refused       |
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

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``SE_*`` environment variables.

        :raises ValueError: a numeric variable is not a positive integer.
        """
        env = dict(os.environ if env is None else env)
        s = cls()
        if env.get("SE_INDEX"):
            s = replace(s, index_path=Path(env["SE_INDEX"]).expanduser())
        if env.get("SE_MODEL"):
            s = replace(s, model=env["SE_MODEL"])
        for key, attr in (("SE_BATCH_SIZE", "batch_size"), ("SE_MAX_PIXELS", "max_pixels")):
            if env.get(key):
                value = int(env[key])
                if value <= 0:
                    raise ValueError(f"{key} must be a positive integer, got {env[key]!r}")
                s = replace(s, **{attr: value})
        return s
