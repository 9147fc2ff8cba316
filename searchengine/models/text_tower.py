"""all-MiniLM-L6-v2 sentence embeddings in numpy: the query side without torch.

The offline encoder embeds a query with the bundled sentence-transformers model
(BERT, 6 layers, 384-d, mean pooling, L2 normalisation). Importing torch and
sentence-transformers costs seconds per process, which a one-shot ``search`` pays
for a few milliseconds of arithmetic; this module runs the same forward pass with
numpy, reading the folder's ``model.safetensors`` (safetensors' numpy loader) and
``tokenizer.json`` (the Rust ``tokenizers`` package, the tokenizer
sentence-transformers itself uses). tests/searchengine/test_text_tower.py checks it
against sentence-transformers.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

#: The Abramowitz-Stegun 7.1.26 erf coefficients (absolute error below 1.5e-7).
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _erf(x: np.ndarray) -> np.ndarray:
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * x)
    a1, a2, a3, a4, a5 = _ERF_A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLMTextTower:
    """A sentence-transformers BERT model folder (Transformer + mean Pooling + Normalize)
    evaluated with numpy.

    :raises ValueError: the folder is not such a model (another pooling, missing tensors).
    :raises OSError: a file cannot be read.
    """

    def __init__(self, folder: Path | str) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        self._check_folder(folder, config)
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        st = _read_json(folder / "sentence_bert_config.json")
        self.max_length = int(st.get("max_seq_length") or 256)
        weights = read_safetensors(folder / "model.safetensors")
        self.w = {k.removeprefix("bert."): v for k, v in weights.items() if v.dtype == np.float32}
        missing = [k for k in self._needed() if k not in self.w]
        if missing:
            raise ValueError(f"{folder} lacks the tensors {', '.join(missing[:3])}")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()

    @staticmethod
    def _check_folder(folder: Path, config: dict) -> None:
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{folder} is not a BERT model with GELU")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{folder} uses {config['position_embedding_type']} position embeddings")
        pooling = _read_json(folder / "1_Pooling" / "config.json")
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        if pooling and modes != {"pooling_mode_mean_tokens"}:
            raise ValueError(f"{folder} pools with {sorted(modes)}, not the mean of the tokens")
        modules = [m.get("type", "") for m in _read_json(folder / "modules.json", [])]
        if modules and not any(m.endswith("Normalize") for m in modules):
            raise ValueError(f"{folder} does not normalise its embeddings")

    def _needed(self) -> list[str]:
        names = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"]
        names += ["embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight"]
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            names += [p + s + ".weight" for s in ("attention.self.query", "attention.output.dense")]
            names += [p + s + ".weight" for s in ("intermediate.dense", "output.dense", "output.LayerNorm")]
        return names

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return ``(N, 384)`` float32 unit embeddings, as sentence-transformers' ``encode``
        with ``normalize_embeddings=True`` does."""
        with _one_blas_thread():
            out = [self._batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        dim = self.w["embeddings.word_embeddings.weight"].shape[1]
        return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        encs = self.tokenizer.encode_batch(list(texts))
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), dtype=np.int64)
        mask = np.zeros((len(encs), n), dtype=np.float32)
        for row, e in enumerate(encs):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1.0
        hidden = self._forward(ids, mask)
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, n = self.w, ids.shape[1]
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
        x = self._norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]  # (b, 1, 1, n)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            x = self._norm(x + self._attention(x, bias, p), p + "attention.output.LayerNorm")
            inner = _gelu(self._dense(x, p + "intermediate.dense"))
            x = self._norm(x + self._dense(inner, p + "output.dense"), p + "output.LayerNorm")
        return x

    def _attention(self, x: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:
        b, n, d = x.shape
        h = self.heads

        def split(name: str) -> np.ndarray:  # (b, h, n, d/h)
            return self._dense(x, p + "attention.self." + name).reshape(b, n, h, d // h).transpose(0, 2, 1, 3)

        q, k, v = split("query"), split("key"), split("value")
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // h) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
        return self._dense(context, p + "attention.output.dense")


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run numpy's BLAS on one thread (with threadpoolctl, when installed): these matrices are
    small, and on a busy machine BLAS threads waiting for each other made a query 10 to 100
    times slower (0.2-0.8 s instead of 12 ms on a loaded 2-core machine)."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    # the limit is process-wide and restored on exit: two overlapping limits (a search during
    # an index run) would restore each other's "1" and leave BLAS on one thread for good
    with _BLAS_LIMIT, controller.limit(limits=1, user_api="blas"):
        yield


_BLAS_LIMIT = threading.Lock()


#: safetensors dtype -> numpy dtype; half precision is widened to float32 on load.
_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file, float32 ones as read-only views of a memory map.

    The format is an 8-byte little-endian header length, a JSON header (name -> dtype,
    shape, byte offsets into the data that follows) and the raw data. Mapping it instead
    of reading it costs nothing up front: a query touches a few rows of the 47 MB word
    embedding table, and the layers come from the page cache.

    :raises ValueError: not a safetensors file, or a dtype other than F32/F16/BF16/I64/I32.
    :raises OSError: the file cannot be read.
    """
    import mmap

    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        try:
            header = json.loads(fh.read(size))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{path} is not a safetensors file ({exc})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{path} is not a safetensors file (its header is not a table)")
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    start, out = 8 + size, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info.get("dtype") not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {info.get('dtype')}")
        dtype = np.dtype(_DTYPES[info["dtype"]])
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = (end - begin) // dtype.itemsize
        if count != math.prod(shape) or start + end > len(buf):
            raise ValueError(f"{path}: tensor {name} does not fit its offsets")
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start + begin).reshape(shape)
        if info["dtype"] == "BF16":  # the high half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.astype(np.float32) if info["dtype"] == "F16" else arr
    return out


def _read_json(path: Path, default=None):
    """The JSON in ``path``, or ``default`` (``{}``) when the file is absent."""
    if not path.is_file():
        return {} if default is None else default
    return json.loads(path.read_text())
