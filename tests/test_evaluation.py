import json

import pytest
from click.testing import CliRunner

from searchengine.cli import cli
from searchengine.evaluation import VARIANTS, image_root, query_sets
from searchengine.metrics import ranking_metrics
from searchengine.models.registry import create_embedder
from searchengine.search import SearchEngine
from searchengine.store.db import Store
from tests.conftest import write_images


def test_ranking_metrics_by_hand():
    ranked = [["a", "b", "c"], ["x", "y", "b"], ["q"]]
    relevant = [frozenset({"a"}), frozenset({"b", "c"}), frozenset({"z"})]
    m = ranking_metrics(ranked, relevant)
    assert m["R@1"] == pytest.approx(1 / 3)
    assert m["R@5"] == pytest.approx(2 / 3) and m["R@10"] == pytest.approx(2 / 3)
    assert m["MRR"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    ndcg2 = (1 / 2) / (1 + 1 / 1.5849625007211563)  # hit at rank 3 of two relevant
    assert m["nDCG@10"] == pytest.approx((1 + ndcg2 + 0) / 3)


def test_query_sets_follow_the_protocols(tmp_path):
    records = [
        {"file": "images/1.jpg", "captions": ["a dog", "a brown dog"]},
        {
            "file": "images/2.jpg",
            "title": "Blue Shirt",
            "captions": ["Blue Shirt"],
            "attributes": {"gender": "Men", "articleType": "Shirts", "baseColour": "Blue"},
        },
        {
            "file": "images/3.jpg",
            "title": "Navy Shirt",
            "attributes": {"gender": "Men", "articleType": "Shirts", "baseColour": "Blue"},
        },
        {"file": "images/4.jpg", "text": "ACME\nINVOICE NO: A-1", "fields": {"company": "ACME"}},
        {"file": "images/5.jpg", "text": "ACME\nINVOICE NO: A-2", "fields": {"company": "ACME"}},
        {"file": "targets/6.jpg", "query_file": "queries/6.png"},
    ]
    sets = {qs.name: qs for qs in query_sets(tmp_path, records)}
    assert set(sets) == {"caption", "title", "attributes", "company", "distinctive line", "image query"}
    assert [q.text for q in sets["caption"].queries] == ["a dog", "a brown dog"]
    (attrs,) = sets["attributes"].queries
    assert attrs.text == "Blue Shirts for Men" and len(attrs.relevant) == 2
    assert len(sets["company"].queries[0].relevant) == 2
    assert {q.text for q in sets["distinctive line"].queries} == {"INVOICE NO: A-1", "INVOICE NO: A-2"}
    assert sets["image query"].queries[0].image.endswith("queries/6.png")
    assert image_root(tmp_path, records[:2]) == (tmp_path / "images").resolve()


def test_eval_command_end_to_end(tmp_path, tiny_spec):
    """The harness reports what the engine returns; file names make the keyword leg exact."""
    write_images(tmp_path / "ds" / "images", 4)
    lines = [{"file": f"images/img{i:03d}.png", "captions": [f"img{i:03d}"]} for i in range(4)]
    (tmp_path / "ds" / "annotations.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    args = ["eval", str(tmp_path / "ds" / "annotations.jsonl"), "--model", tiny_spec, "--json"]
    r = CliRunner().invoke(cli, [*args, "--index", str(tmp_path / "idx")])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]["caption"]
    assert set(res) == set(VARIANTS) and res["default"]["queries"] == 4
    # each name is in one image's keyword document only: the keyword leg is exact, and a
    # complete match of a code-like name leads the fused ranking
    assert res["keyword"]["R@1"] == res["keyword"]["MRR"] == 1.0 and res["keyword"]["no_results"] == 0
    assert res["fused (no cutoff)"]["R@1"] == res["default"]["R@1"] == 1.0
    # the vector leg's figures are what the engine itself ranks for these queries
    engine = SearchEngine(Store(tmp_path / "idx"), create_embedder(tiny_spec))
    ranked = [
        [h.path for h in engine.query(q["captions"][0], mode="vector", limit=100, min_score=-1).hits]
        for q in lines
    ]
    relevant = [frozenset({str((tmp_path / "ds" / q["file"]).resolve())}) for q in lines]
    expected = ranking_metrics(ranked, relevant)
    assert {k: res["vector (no cutoff)"][k] for k in expected} == pytest.approx(expected)
    # with its cutoff the vector leg returns a prefix of that ranking, or nothing
    cut = [[h.path for h in engine.query(q["captions"][0], mode="vector", limit=100).hits] for q in lines]
    assert all(c == r[: len(c)] for c, r in zip(cut, ranked, strict=True))
    assert res["vector (default)"]["no_results"] == sum(1 for c in cut if not c) / 4
    r = CliRunner().invoke(
        cli, ["eval", str(tmp_path / "ds" / "annotations.jsonl"), "--index", str(tmp_path / "idx")]
    )
    assert r.exit_code == 0 and "| caption | default | 4 | 0.0% | 1.000 |" in r.stdout


def test_eval_reports_how_many_absent_thing_queries_return_nothing(tmp_path, tiny_spec):
    write_images(tmp_path / "ds" / "images", 3)
    lines = [{"file": f"images/img{i:03d}.png", "captions": [f"img{i:03d}"]} for i in range(3)]
    (tmp_path / "ds" / "annotations.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    absent = ["a violin on sheet music", "a jellyfish in an aquarium", "img001 under the sea"]
    (tmp_path / "absent.txt").write_text("\n".join(absent) + "\n\n")
    args = [
        "eval",
        str(tmp_path / "ds" / "annotations.jsonl"),
        "--model",
        tiny_spec,
        "--index",
        str(tmp_path / "i"),
    ]
    r = CliRunner().invoke(cli, [*args, "--absent", str(tmp_path / "absent.txt"), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["results"]["absent"]
    engine = SearchEngine(Store(tmp_path / "i"), create_embedder(tiny_spec))
    for name, fields in VARIANTS.items():
        empty = sum(not engine.query(q, limit=10, **fields).hits for q in absent)
        assert got[name] == {"queries": 3, "rejected": pytest.approx(empty / 3)}
    assert got["keyword"]["rejected"] == pytest.approx(2 / 3)  # "img001" is a file name
    r = CliRunner().invoke(cli, [*args, "--absent", str(tmp_path / "absent.txt")])
    assert "| absent | keyword | 3 | 66.7% |" in r.stdout
