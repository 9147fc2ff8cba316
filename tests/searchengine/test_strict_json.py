"""Strict JSON (issue: safe by default, fault 6): no NaN, 1e400, deep nesting or huge number
gets past the parser, and the CLI's JSON readers (import, tune, eval) say so in one line."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from searchengine.cli import cli
from searchengine.strict_json import InvalidJSON, loads
from tests.conftest import write_images

DEEP = "[" * 10_000 + "]" * 10_000
HOSTILE = {
    "1e400": ("[1e400]", "must be finite"),
    "-1e400": ('{"a": -1e400}', "must be finite"),
    "NaN": ("[NaN]", "must be finite"),
    "Infinity": ('{"a": Infinity}', "must be finite"),
    "deep list": (DEEP, "nested deeper than 64 levels"),
    "deep object": ('{"a":' * 100 + "1" + "}" * 100, "nested deeper than 64 levels"),
    "huge int": ("9" * 4_300, "4,300 characters"),
    "huge float": ("0." + "1" * 500, "502 characters"),
    "not JSON": ('{"a": ', "not JSON"),
    "not UTF-8": (b'["\xff"]', "not UTF-8"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_json_is_refused_with_one_line(name):
    text, message = HOSTILE[name]
    with pytest.raises(InvalidJSON, match=message) as caught:
        loads(text)
    assert "\n" not in str(caught.value) and isinstance(caught.value, ValueError)


def test_ordinary_json_parses_as_json_does():
    text = '{"a": [1, -2.5, 1e300, "[[[{{", {"b": null, "c": true}], "d": "\\"]]"}'
    assert loads(text) == json.loads(text)
    assert loads(b'{"x": "\xc3\xa9"}') == {"x": "é"}
    nested = "[" * 64 + "]" * 64
    assert loads(nested) == json.loads(nested)  # the limit itself is allowed
    assert loads('["' + "[" * 1000 + '"]') == ["[" * 1000]  # brackets in strings do not nest
    with pytest.raises(InvalidJSON, match="over the limit of 10 bytes"):
        loads("[" + "1," * 10 + "1]", max_bytes=10)


@pytest.fixture
def indexed(tmp_path, tiny_embedder):
    """An index of two images under tmp_path/photos."""
    from indexer.pipeline import Indexer
    from searchengine.store.db import Store

    write_images(tmp_path / "photos", 2)
    Indexer(Store(tmp_path / "index"), tiny_embedder).run(tmp_path / "photos")
    return tmp_path / "index"


def test_cli_import_reports_hostile_lines_and_goes_on(tmp_path, indexed):
    index = indexed
    catalogue = tmp_path / "cat.jsonl"
    catalogue.write_text(
        "\n".join(
            [
                '{"file": "img000.png", "title": "Kept"}',
                '{"file": "img001.png", "a": ' + DEEP + "}",
                '{"file": "img001.png", "price": ' + "9" * 4_300 + "}",
                '{"file": "img001.png", "price": NaN}',
                '{"file": "img001.png", "price": 1e400}',
            ]
        )
    )
    r = CliRunner().invoke(cli, ["import", str(catalogue), "--index", str(index)])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output + r.stderr
    assert "2 rows" not in r.stdout and "5 rows, 1 matched" in r.stdout
    assert "line 2: the JSON text is nested deeper than 64 levels" in r.stderr
    assert "line 3: a number has 4,300 characters" in r.stderr
    assert "line 4: NaN is not a JSON number" in r.stderr and "line 5: the number 1e400" in r.stderr


def test_cli_tune_and_eval_refuse_hostile_json_in_one_line(tmp_path, indexed):
    index = indexed
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "\n".join(
            ['{"file": "photos/img000.png", "captions": ' + DEEP + "}"]
            + ['{"file": "photos/img001.png", "captions": [NaN]}']
            + ['{"file": "photos/img001.png", "captions": ["x"], "n": ' + "9" * 4_300 + "}"]
        )
    )
    r = CliRunner().invoke(cli, ["tune", str(pairs), "--index", str(index), "-q"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert "Traceback" not in r.output + r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "3 lines skipped; line 1: the JSON text is nested deeper than 64 levels" in r.stderr

    annotations = tmp_path / "annotations.jsonl"
    annotations.write_text('{"file": "photos/img000.png", "captions": ["a"]}\n{"file": ' + DEEP + "}\n")
    r = CliRunner().invoke(cli, ["eval", str(annotations), "--index", str(index)])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert r.stderr.strip() == f"Error: {annotations} line 2: the JSON text is nested deeper than 64 levels"


def test_the_depth_check_is_linear_on_an_unterminated_string_of_escaped_quotes():
    # a one-pattern string matcher backtracks quadratically here: 200 KB took minutes,
    # with the server's event loop blocked (a denial of service by one request)
    text = "[" * 65 + '"' + '\\"' * 100_000
    started = time.perf_counter()
    with pytest.raises(InvalidJSON):
        loads(text)
    assert time.perf_counter() - started < 10  # a complexity guard, not a speed target


def test_escaped_quotes_and_brackets_inside_strings_do_not_count_as_nesting():
    text = "[" * 60 + '"\\"' + "[" * 40 + '\\\\"' + "]" * 60
    assert loads(text) is not None
