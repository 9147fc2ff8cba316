"""Train the offline encoder's caption bridge (``offline:fast-v2``) from public caption data.

The label bridge of ``fast-v1`` maps an image to the ImageNet labels it shows; this
learns, in addition, a linear map from the same network's penultimate features into the
MiniLM text space, contrastively (InfoNCE, as ``searchengine tune`` does), on the
Flickr8k **train** split. The dev split (``../shared/datasets/flickr8k_dev1k``) is held
out: it picks the epoch; the blend with the label bridge is the share with the best mean
R@1 over the held-out caption sets (the dev split and ``--blend-with`` sets such as
coco_mini; ties go to more label bridge, which kinds of images Flickr lacks keep). The
Flickr8k test split is never read (``--test`` names it so that a list overlapping it is
refused). Seeded and deterministic on one machine.

Inputs (fetched from public repositories, see the model card this writes):

* ``--images``: the Flickr8k images (e.g. ``data/images/`` of RlNZLER/Image-Text-Matching);
* ``--captions``: ``Flickr8k.token.txt`` (``image.jpg#n<TAB>caption``);
* ``--train``: ``Flickr_8k.trainImages.txt`` (one file name per line).

    python scripts/train_bridge.py --images DIR --captions Flickr8k.token.txt \\
        --train Flickr_8k.trainImages.txt --test Flickr_8k.testImages.txt \\
        --dev ../shared/datasets/flickr8k_dev1k/annotations.jsonl \\
        --blend-with ../shared/datasets/coco_mini/annotations.jsonl \\
        --work /tmp/bridge --out searchengine/models/data/bridge-flickr8k-v2.npz

Writes the weights (``--out``) and beside them a model card (``.md``) with the data,
input hashes, licences and figures. Features are cached in ``--work`` (delete it to
extract again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchengine.models.conse import PRESETS, ConSEEmbedder  # noqa: E402
from searchengine.tuning import Features, Pairs, extract, held_out, load_pairs, recall, train  # noqa: E402


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_pairs(images: Path, captions: Path, names: Path) -> Pairs:
    """The train split's images and their captions."""
    wanted = [n.strip() for n in names.read_text().splitlines() if n.strip()]
    texts: dict[str, list[str]] = {}
    for line in captions.read_text(encoding="utf-8").splitlines():
        key, _, caption = line.partition("\t")
        name = key.split("#")[0]
        if caption.strip():
            texts.setdefault(name, []).append(caption.strip())
    keep = sorted(n for n in wanted if n in texts and (images / n).is_file())
    return Pairs([str(images / n) for n in keep], [texts[n] for n in keep])


def features(name: str, pairs: Pairs, work: Path, embedder) -> Features:
    """Extract (or read back) the frozen towers' outputs for ``pairs``."""
    key = hashlib.sha256("\n".join(pairs.images).encode() + repr(pairs.texts).encode()).hexdigest()[:12]
    path = work / f"{name}-{key}.npz"
    if path.is_file():
        with np.load(path) as d:
            return Features(d["vectors"], d["features"], d["texts"], d["owner"])
    start = time.time()
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] % 640 < n:
            print(f"  {name}: {done[0]}/{len(pairs.images)} images", file=sys.stderr, flush=True)

    f = extract(embedder, pairs, progress=progress)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(path, vectors=f.vectors, features=f.features, texts=f.texts, owner=f.owner)
    print(f"  {name}: extracted in {time.time() - start:.0f}s", file=sys.stderr)
    return f


BLENDS = tuple(round(0.1 * i, 1) for i in range(10))


def choose_blend(adapter, held_sets: dict[str, Features]) -> tuple[float, dict]:
    """The share of the label bridge with the best mean R@1 over the held-out caption sets
    (ties: the larger share, closer to fast-v1 on kinds of image the captions lack)."""
    scores, per_set = {}, {}
    for alpha in BLENDS:
        adapter.alpha = alpha
        per_set[alpha] = {
            name: recall(adapter.apply(f.features, f.vectors), f.texts, f.owner)
            for name, f in held_sets.items()
        }
        scores[alpha] = round(float(np.mean([r["R@1"] for r in per_set[alpha].values()])), 4)
    best = max(scores, key=lambda a: (scores[a], a))
    return best, {"mean R@1 per share": scores, f"at {best}": per_set[best]}


def card(args, result, inputs: dict, out: Path, blends: dict) -> str:
    """The model card written beside the weights."""
    a = result.adapter
    return f"""# bridge-flickr8k-v2: the caption bridge of `offline:fast-v2`

A linear map (1280 -> 384) from EfficientNet-Lite0's penultimate features into the
all-MiniLM-L6-v2 text space, blended with fast-v1's ImageNet label bridge:
`normalize({a.alpha:.2f} * label_bridge + {1 - a.alpha:.2f} * normalize(W f + b))`.
Trained by `scripts/train_bridge.py` (seed {args.seed}, at most {args.epochs} epochs, blend also
chosen on {", ".join(p.parent.name for p in args.blend_with) or "nothing else"}) with a symmetric
contrastive loss against the frozen text tower.

## Data
- Flickr8k train split: {result.train_images} images, {result.train_texts} captions
  (Hodosh, Young and Hockenmaier 2013; research use). Images from the public repository
  RlNZLER/Image-Text-Matching (`data/images/`), captions and split lists from
  ainu412/Image-Captioning (`Flickr8k_text/`) and b43646/Image-Caption.
- Held out (epoch and blend chosen on it, never trained on): the Flickr8k dev split,
  {result.val_images} images, {result.val_texts} captions. The test split was never read.
- Input hashes (sha256): {json.dumps(inputs, indent=2)}

## Figures (held-out dev split, text -> image over its {result.val_images} images)
- label bridge alone (fast-v1): {json.dumps(result.before)}
- with this bridge, at the epoch's own blend: {json.dumps(result.after)}
- best epoch {result.best_epoch} of {result.epochs} (the epoch chosen on the dev split)
- blend: the share of the label bridge with the best mean R@1 over the held-out caption
  sets (the dev split and coco_mini), chosen {a.alpha}: {json.dumps(blends)}

## Licences and intended use
The weights here are derived from Flickr8k captions and images (research use) and the
EfficientNet-Lite / MiniLM weights (Apache-2.0; trained on ImageNet and MS MARCO, whose
terms are non-commercial). Intended for finding photos by description in personal and
evaluation use; have a lawyer check before commercial use.

## Caution
Flickr8k shows people, animals and outdoor scenes; on other kinds of images (products,
documents, screenshots) the label bridge carries most of the weight. The captions
describe, and can carry the biases of, the Flickr users' photos and the annotators.
Weights file: `{out.name}`, sha256 {sha256(out)}.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--captions", type=Path, required=True)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--dev", type=Path, required=True)
    ap.add_argument("--test", type=Path, help="the test split's list: never trained on (checked)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument(
        "--blend-with", type=Path, nargs="*", default=[], help="more held-out annotations for the blend"
    )
    args = ap.parse_args()
    embedder = ConSEEmbedder(PRESETS["fast-v1"])
    pairs = train_pairs(args.images, args.captions, args.train)
    dev = load_pairs(args.dev)
    held_names = {Path(p).name for p in dev.images}
    if args.test is not None:
        held_names |= {n.strip() for n in args.test.read_text().splitlines() if n.strip()}
    overlap = held_names & {Path(p).name for p in pairs.images}
    if overlap:
        sys.exit(f"the train list holds {len(overlap)} held-out images (e.g. {sorted(overlap)[0]}): refusing")
    print(
        f"train: {len(pairs.images)} images, {pairs.count} captions; dev: {len(dev.images)}", file=sys.stderr
    )
    both, held = held_out(
        features("train", pairs, args.work, embedder), features("dev", dev, args.work, embedder)
    )

    def progress(epoch: int, metrics: dict) -> None:
        print(f"  epoch {epoch}: dev {metrics}", file=sys.stderr, flush=True)

    result = train(both, "offline:fast-v1", seed=args.seed, epochs=args.epochs, held=held, progress=progress)
    adapter = result.adapter
    held_sets = {"flickr8k dev": features("dev", dev, args.work, embedder)}
    for path in args.blend_with:
        held_sets[path.parent.name] = features(path.parent.name, load_pairs(path), args.work, embedder)
    adapter.alpha, blends = choose_blend(adapter, held_sets)
    print(f"blend over {', '.join(held_sets)}: chosen {adapter.alpha}: {blends}", file=sys.stderr)
    inputs = {
        "captions": sha256(args.captions),
        "train list": sha256(args.train),
        "train images": hashlib.sha256("".join(sha256(Path(p)) for p in pairs.images).encode()).hexdigest(),
        "dev annotations": sha256(args.dev),
        **{f"blend-with {p.parent.name}": sha256(p) for p in args.blend_with},
    }
    adapter.info = {
        "script": "scripts/train_bridge.py",
        "seed": args.seed,
        "epochs": args.epochs,
        "blend_with": [str(p) for p in args.blend_with],
        "inputs": inputs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    adapter.write(args.out)
    args.out.with_suffix(".md").write_text(card(args, result, inputs, args.out, blends), encoding="utf-8")
    print(f"wrote {args.out} (sha256 {sha256(args.out)}); dev before {result.before} after {result.after}")


if __name__ == "__main__":
    main()
