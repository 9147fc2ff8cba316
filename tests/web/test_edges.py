"""The two edges over one core: ``searchengine search --json`` and ``GET /api/search`` agree.

Same index, same parameters: the same ids in the same order, and hit by hit the same
fields (the API adds only the thumbnail and file URLs), the same page facts.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from searchengine.cli import cli

#: What only the API's hits have.
URLS = {"thumbnail", "file"}
#: What both edges say of the page (the CLI adds the index folder, the API the query and timing).
PAGE = ("mode", "fusion", "encoder", "total", "offset", "limit", "cutoff", "facets")


def _cases(root):
    """(CLI arguments, API parameters) of the same searches."""
    return {
        "text with filters": (
            ["red square", "--type", "png", "--folder", str(root), "-k", "6", "--min-score", "-1"],
            {"q": "red square", "type": "png", "folder": str(root), "limit": 6, "min_score": -1},
        ),
        "text with a tag, second page": (
            ["label", "--tag", "square", "-k", "3", "--offset", "3"],
            {"q": "label", "tag": "square", "limit": 3, "offset": 3},
        ),
        "keyword": (
            ["label QX", "--mode", "keyword", "-k", "20"],
            {"q": "label QX", "mode": "keyword", "limit": 20},
        ),
        "vector": (
            ["a blue square", "--mode", "vector", "-k", "5", "--min-score", "-1"],
            {"q": "a blue square", "mode": "vector", "limit": 5, "min_score": -1},
        ),
    }


@pytest.mark.parametrize("explain", [False, True], ids=["plain", "explain"])
@pytest.mark.parametrize("case", ["text with filters", "text with a tag, second page", "keyword", "vector"])
def test_cli_and_api_give_the_same_page(client, gallery, case, explain):
    root, index = gallery
    args, params = _cases(root)[case]
    r = CliRunner().invoke(
        cli, ["search", *args, "--index", str(index), "--json", *(["--explain"] if explain else [])]
    )
    assert r.exit_code == 0, r.output
    by_cli = json.loads(r.stdout)
    api = client.get("/api/search", params={**params, "explain": explain})  # the API explains by default
    assert api.status_code == 200, api.text
    by_api = api.json()

    assert [h["id"] for h in by_cli["results"]] == [h["id"] for h in by_api["results"]]
    assert by_cli["results"], "a search that finds nothing proves little"
    for cli_hit, api_hit in zip(by_cli["results"], by_api["results"], strict=True):
        assert {k: api_hit.get(k) for k in cli_hit} == cli_hit, cli_hit["name"]
        assert set(api_hit) == set(cli_hit) | URLS
        assert api_hit["file"] == f"/api/images/{api_hit['id']}/file"
        assert (api_hit["legs"] is not None) == explain == (cli_hit["legs"] is not None)
    assert {k: by_api[k] for k in PAGE} == {k: by_cli[k] for k in PAGE}
    assert by_cli["index"] == str(index)


def test_cli_and_api_agree_on_facets_and_browsing(client, gallery):
    """No query, filters only (browse), with a facet: still one answer."""
    root, index = gallery
    r = CliRunner().invoke(
        cli, ["search", "--index", str(index), "--json", "--folder", str(root / "sub"), "--facet", "colour"]
    )
    assert r.exit_code == 0, r.output
    by_cli = json.loads(r.stdout)
    by_api = client.get(
        "/api/search", params={"folder": str(root / "sub"), "facet": "colour", "limit": 10, "explain": False}
    ).json()
    assert [h["id"] for h in by_cli["results"]] == [h["id"] for h in by_api["results"]]
    assert len(by_cli["results"]) == 3
    assert {k: by_api[k] for k in PAGE} == {k: by_cli[k] for k in PAGE}
