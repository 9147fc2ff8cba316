import json

import pytest
from click.testing import CliRunner

from searchengine.cli import cli
from searchengine.evaluation import image_root, query_sets, ranking_metrics
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
    write_images(tmp_path / "ds" / "images", 4)
    lines = [{"file": f"images/img{i:03d}.png", "captions": [f"picture number {i}"]} for i in range(4)]
    (tmp_path / "ds" / "annotations.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    r = CliRunner().invoke(
        cli,
        [
            "eval",
            str(tmp_path / "ds" / "annotations.jsonl"),
            "--model",
            tiny_spec,
            "--json",
            "--index",
            str(tmp_path / "idx"),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]["caption"]
    assert set(res) == {"vector", "keyword", "fused"}
    assert res["vector"]["queries"] == 4 and 0 <= res["fused"]["R@10"] <= 1
    assert res["vector"]["R@10"] == 1.0  # 4 images: every one is in the top 10
    r = CliRunner().invoke(
        cli, ["eval", str(tmp_path / "ds" / "annotations.jsonl"), "--index", str(tmp_path / "idx")]
    )
    assert r.exit_code == 0 and "| caption | fused | 4 |" in r.stdout
