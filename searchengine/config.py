"""Settings, read from the environment (prefix ``SE_``) once, and overridden by CLI flags.

| variable         | default                                   | meaning                              |
|------------------|-------------------------------------------|--------------------------------------|
| SE_INDEX         | $XDG_DATA_HOME/searchengine/index         | folder holding index.db + FAISS      |
| SE_MODEL         | best encoder present offline              | encoder spec for new indexes         |
| SE_BATCH_SIZE    | 16                                        | images embedded per batch            |
| SE_MAX_PIXELS    | 100000000                                 | larger images are refused            |
| SE_CAPTIONER     | offline                                   | captioner spec, or none              |
| SE_OCR           | rapidocr                                  | OCR engine spec, or none             |
| SE_API_KEY       | none                                      | key (X-API-Key) the service's        |
|                  |                                           | indexing and admin endpoints require |
| SE_CORS_ORIGINS  | none (CORS off)                           | comma-separated origins allowed to   |
|                  |                                           | call the API from a browser          |
| SE_MAX_UPLOAD_MB | 20                                        | larger request bodies are refused    |
| SE_ALLOWED_HOSTS | none: loopback names and IP addresses     | comma-separated host names the       |
|                  |                                           | service also answers to (``*.lan``:  |
|                  |                                           | a domain's hosts; ``*``: any)        |
| SE_PUBLIC_READS  | false                                     | with an API key: searches and images |
|                  |                                           | need no key, only changes do         |
| SE_VECTOR_MEMORY_MB | 1024                                   | memory the FAISS index may take: it  |
|                  |                                           | holds compressed codes past it       |

The service's other settings (``roots``, ``max_upload_pixels``, ``refresh_interval``)
have no variable: ``searchengine serve --root`` sets the first, code the others.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")
_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\]|[0-9a-f:.]+)$")
_BOOLEANS = {
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "0": False,
    "false": False,
    "no": False,
    "off": False,
}


def default_index_path() -> Path:
    """Return the per-user default index folder (XDG data dir, like rclip)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "searchengine" / "index"


def check_origin(origin: str, source: str = "a CORS origin") -> str:
    """Return ``origin`` if a browser could send it (``scheme://host[:port]``, no path), or ``*``.

    :raises ValueError: it could never match (a path, a trailing slash, no scheme).
    """
    if origin != "*" and not _ORIGIN.match(origin):
        raise ValueError(
            f"{source} must look like https://shop.example or http://localhost:3000"
            f" (scheme and host, no path or trailing slash), got {origin!r}"
        )
    return origin


def check_host(host: str, source: str = "an allowed host") -> str:
    """Return ``host`` in lower case if it is a host name, ``*.domain``, ``*`` or an IP address.

    :raises ValueError: a scheme, port, path or space (it could never match a Host header).
    """
    name = host.strip().lower()
    if not _HOST.match(name):
        raise ValueError(
            f"{source} must be a host name like photos.lan, *.lan or 192.168.1.5"
            f" (no scheme, port or path), got {host!r}"
        )
    return name


@dataclass(frozen=True)
class Settings:
    """Everything the core and the service need to know, built explicitly (no import-time global).

    :param roots: folders the service may index (``POST /api/index``); empty: the
        folders the index already holds.
    :param api_key: required (``X-API-Key``) by the service's indexing and admin
        endpoints when set.
    :param cors_origins: origins allowed to call the API from a browser; none: CORS off.
    :param allowed_hosts: host names the service answers to besides loopback names and
        IP addresses (a guard against DNS rebinding); ``*.lan`` a domain's, ``*`` any.
        ``searchengine serve --host NAME`` adds NAME.
    :param public_reads: with ``api_key`` set, let reads (searches, images) through
        without the key; by default they need it too.
    :param max_upload_bytes: larger request bodies (uploads) are refused with 413.
    :param max_upload_pixels: uploaded query images with more pixels are refused with 413.
    :param refresh_interval: while an index run changes the store, the FAISS index
        searched is reloaded at most this often (seconds).
    """

    index_path: Path = field(default_factory=default_index_path)
    model: str | None = None
    batch_size: int = 16
    max_pixels: int = 100_000_000
    captioner: str = "offline"
    ocr: str = "rapidocr"
    # the service (searchengine serve, web.app.create_app)
    api_key: str | None = field(default=None, repr=False)  # a secret: kept out of logs
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    public_reads: bool = False
    roots: tuple[str, ...] = ()
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_pixels: int = 50_000_000
    refresh_interval: float = 2.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``SE_*`` environment variables.

        :raises ValueError: a numeric variable is not a positive number, an origin in
            ``SE_CORS_ORIGINS`` or a host in ``SE_ALLOWED_HOSTS`` could never match a
            browser's, or ``SE_PUBLIC_READS`` is not a boolean.
        """
        env = dict(os.environ if env is None else env)
        s = cls()
        if env.get("SE_INDEX"):
            s = replace(s, index_path=Path(env["SE_INDEX"]).expanduser())
        for key, attr in (
            ("SE_MODEL", "model"),
            ("SE_CAPTIONER", "captioner"),
            ("SE_OCR", "ocr"),
            ("SE_API_KEY", "api_key"),
        ):
            if env.get(key):
                s = replace(s, **{attr: env[key]})
        for key, attr in (("SE_BATCH_SIZE", "batch_size"), ("SE_MAX_PIXELS", "max_pixels")):
            if env.get(key):
                s = replace(s, **{attr: _positive(key, env[key], int)})
        if env.get("SE_MAX_UPLOAD_MB"):
            mb = _positive("SE_MAX_UPLOAD_MB", env["SE_MAX_UPLOAD_MB"], float)
            s = replace(s, max_upload_bytes=max(1, int(mb * 1024 * 1024)))
        if env.get("SE_CORS_ORIGINS", "").strip():
            origins = [o.strip() for o in env["SE_CORS_ORIGINS"].split(",") if o.strip()]
            s = replace(s, cors_origins=tuple(check_origin(o, "each of SE_CORS_ORIGINS") for o in origins))
        if env.get("SE_ALLOWED_HOSTS", "").strip():
            hosts = [h for h in env["SE_ALLOWED_HOSTS"].split(",") if h.strip()]
            s = replace(s, allowed_hosts=tuple(check_host(h, "each of SE_ALLOWED_HOSTS") for h in hosts))
        if env.get("SE_PUBLIC_READS", "").strip():
            flag = env["SE_PUBLIC_READS"].strip().lower()
            if flag not in _BOOLEANS:
                raise ValueError(f"SE_PUBLIC_READS must be true or false (1 or 0), got {flag!r}")
            s = replace(s, public_reads=_BOOLEANS[flag])
        vector_memory_bytes(env)  # checked now, read where an index is built
        return s


def vector_memory_bytes(env: dict[str, str] | None = None) -> int:
    """The memory budget of the FAISS index (``SE_VECTOR_MEMORY_MB``, default 1024 MiB), in bytes:
    the index kind is chosen to fit it (see :func:`searchengine.store.vector_build.choose_index_key`).

    :raises ValueError: the variable is not a positive number.
    """
    raw = (os.environ if env is None else env).get("SE_VECTOR_MEMORY_MB", "").strip()
    return int(_positive("SE_VECTOR_MEMORY_MB", raw, float) * 1024 * 1024) if raw else 1 << 30


def _positive(key: str, raw: str, kind: type[int] | type[float]) -> int | float:
    """``raw`` as a positive ``kind``, or a ValueError naming ``key``."""
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):  # also refuses nan
        noun = "integer" if kind is int else "number"
        raise ValueError(f"{key} must be a positive {noun}, got {raw!r}")
    return value
