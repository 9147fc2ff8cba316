"""Sweep the ConSE knobs on a caption-retrieval dev set (tuning only, not the eval).

Caches each backbone's logits once, then scores every combination of top-k,
temperature, prompts, lemmas and centring with plain matrix products.

    python bench/tune_conse.py ../shared/datasets/flickr8k_dev1k
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from searchengine.models.base import l2_normalize
from searchengine.models.conse import ConSEConfig, ConSEEmbedder

PROMPT_SETS = {
    "photo": ("a photo of a {}.",),
    "ens3": ("a photo of a {}.", "a picture of a {}.", "{}"),
    "ens5": (
        "a photo of a {}.",
        "a photo of the {}.",
        "a close-up photo of a {}.",
        "a photo of a person with a {}.",
        "{}",
    ),
}


def recall(sims: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    gold_scores = sims[np.arange(len(gold)), gold][:, None]
    ranks = (sims > gold_scores).sum(axis=1)
    out = {f"R@{k}": float((ranks < k).mean()) for k in (1, 5, 10)}
    out["MRR"] = float((1.0 / (ranks + 1)).mean())
    return out


def main(folder: str) -> None:
    root = Path(folder)
    recs = [json.loads(line) for line in (root / "annotations.jsonl").open()]
    cache = Path("bench/out/conse_cache")
    cache.mkdir(parents=True, exist_ok=True)
    captions, gold = [], []
    for i, r in enumerate(recs):
        for c in r["captions"]:
            captions.append(c)
            gold.append(i)
    gold = np.array(gold)
    base = ConSEEmbedder()
    qv = base._encode_sentences(captions)
    logits = {}
    for b in ("lite0", "lite1", "lite2"):
        f = cache / f"{root.name}-{b}.npy"
        if not f.exists():
            enc = ConSEEmbedder(ConSEConfig(backbones=(b,), temperature=1.0))
            nets = enc._load_classifiers()
            net, tf = nets[0]
            out = []
            for s in range(0, len(recs), 32):
                ims = [Image.open(root / r["file"]).convert("RGB") for r in recs[s : s + 32]]
                x = torch.stack([tf(im) for im in ims]).float()
                with torch.inference_mode():
                    out.append(net((x - 127.0) / 128.0).numpy())
            np.save(f, np.concatenate(out))
        logits[b] = np.load(f)
        print("cached", b, flush=True)
    results = []
    for pname, lemmas in itertools.product(PROMPT_SETS, (1, 2, 3)):
        enc = ConSEEmbedder(ConSEConfig(prompts=PROMPT_SETS[pname], lemmas=lemmas))
        enc._text_model = base._text_model
        labels = enc.label_matrix()
        mean = labels.mean(0, keepdims=True)
        for combo in (
            ("lite0",),
            ("lite1",),
            ("lite2",),
            ("lite0", "lite1", "lite2"),
            ("lite1", "lite2"),
        ):
            for temp, k, center in itertools.product((0.5, 1.0, 2.0, 3.0), (5, 10, 20, 50), (False, True)):
                probs = sum(torch.softmax(torch.from_numpy(logits[b]) / temp, 1).numpy() for b in combo)
                probs /= len(combo)
                top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
                w = np.take_along_axis(probs, top, axis=1)
                iv = np.einsum("nk,nkd->nd", w, labels[top])
                q = qv
                if center:
                    iv = iv / w.sum(1, keepdims=True) - mean
                    q = l2_normalize(qv - mean)
                iv = l2_normalize(iv)
                m = recall(q @ iv.T, gold)
                row = dict(
                    prompts=pname,
                    lemmas=lemmas,
                    backbones="+".join(combo),
                    T=temp,
                    k=k,
                    center=center,
                    **m,
                )
                results.append(row)
        best = max(results, key=lambda r: r["R@5"] + r["R@1"] + r["R@10"])
        print(pname, lemmas, "best so far", best, flush=True)
    results.sort(key=lambda r: -(r["R@1"] + r["R@5"] + r["R@10"]))
    Path("bench/out/conse_sweep.json").write_text(json.dumps(results, indent=1))
    for r in results[:15]:
        print(r)
    ref = [
        r
        for r in results
        if r["prompts"] == "photo"
        and r["lemmas"] == 1
        and r["backbones"] == "lite0"
        and r["T"] == 1.0
        and r["k"] == 10
        and not r["center"]
    ]
    print("reference", ref)


if __name__ == "__main__":
    main(sys.argv[1])
