import json
import re

import pytest
from click.testing import CliRunner

from searchengine.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def test_index_search_info_round_trip(runner, image_dir, index_dir, tiny_spec):
    r = invoke(runner, "index", image_dir, "--index", index_dir, "--model", tiny_spec)
    assert r.exit_code == 0, r.output
    assert "encoder: clip:se-tiny:random" in r.stderr
    assert "9 embedded" in r.stderr
    r = invoke(
        runner, "search", "a red square", "--index", index_dir, "--json", "-k", "4", "--min-score", "-1"
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["encoder"] == "clip:se-tiny:random"
    assert len(data["results"]) == 4
    assert {"path", "score", "rank"} <= set(data["results"][0])
    scores = [x["score"] for x in data["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= x["relevance"] <= 1 and x["reasons"] for x in data["results"])
    r = invoke(runner, "search", "a red square", "--index", index_dir, "--min-score", "-1")
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 9
    # each line: rank, relevance (0 to 1), path, why in words; the raw figures only with --explain
    assert all(re.match(r"\s*\d+  [01]\.\d\d  \S+.*  -- \w", line) for line in r.stdout.splitlines())
    assert "details:" not in r.stdout
    r = invoke(runner, "search", "a red square", "--index", index_dir, "--min-score", "-1", "--explain")
    assert all("[details: vector #" in line for line in r.stdout.splitlines())
    r = invoke(runner, "info", "--index", index_dir, "--json")
    info = json.loads(r.stdout)
    assert (info["images"], info["ok"], info["failed"], info["vectors"]) == (9, 9, 0, 9)
    assert info["encoder"]["name"] == "clip" and info["faiss_key"] == "Flat"


def test_second_run_reports_unchanged(runner, image_dir, index_dir, tiny_spec):
    invoke(runner, "index", image_dir, "--index", index_dir, "--model", tiny_spec, "-q")
    r = invoke(runner, "index", image_dir, "--index", index_dir, "-q")  # encoder from the index
    assert r.exit_code == 0
    assert "9 unchanged, 0 to process" in r.stderr


def test_index_env_variable_selects_index(runner, image_dir, tmp_path, tiny_spec, monkeypatch):
    monkeypatch.setenv("SE_INDEX", str(tmp_path / "env-index"))
    assert invoke(runner, "index", image_dir, "--model", tiny_spec, "-q").exit_code == 0
    assert (tmp_path / "env-index" / "index.db").is_file()
    assert invoke(runner, "info").exit_code == 0


def test_default_index_lives_in_xdg_data_home(runner, image_dir, tmp_path, tiny_spec):
    assert invoke(runner, "index", image_dir, "--model", tiny_spec, "-q").exit_code == 0
    assert (tmp_path / "xdg-data" / "searchengine" / "index" / "index.db").is_file()


def test_mismatched_model_is_a_clear_error(runner, image_dir, index_dir, tiny_spec, tiny_spec_other):
    invoke(runner, "index", image_dir, "--index", index_dir, "--model", tiny_spec, "-q")
    for cmd in (("search", "x"), ("index", image_dir)):
        r = invoke(runner, *cmd, "--index", index_dir, "--model", tiny_spec_other)
        assert r.exit_code == 1
        assert "built with encoder 'clip:se-tiny:random'" in r.stderr
        assert "--index NEW_FOLDER" in r.stderr and "--rebuild" not in r.stderr
    r = invoke(
        runner,
        "index",
        image_dir,
        "--index",
        index_dir,
        "--model",
        tiny_spec_other,
        "--rebuild",
        "-q",
    )
    assert r.exit_code == 0, r.output
    r = invoke(runner, "search", "x", "--index", index_dir, "--json")
    assert json.loads(r.stdout)["encoder"] == "clip:se-tiny-b:random"


def test_errors_are_messages_not_tracebacks(runner, index_dir, tmp_path):
    r = invoke(runner, "search", "x", "--index", index_dir)
    assert r.exit_code == 1 and "no index at" in r.stderr and "Traceback" not in r.output
    r = invoke(runner, "index", tmp_path / "missing", "--index", index_dir, "--model", "nope")
    assert r.exit_code != 0
    r = invoke(runner, "index", tmp_path, "--index", index_dir, "--model", "nope")
    assert r.exit_code == 1 and "unknown encoder 'nope'; available: clip, offline" in r.stderr


def test_failures_listed_by_index_and_info(runner, tmp_path, index_dir, tiny_spec):
    from tests.hostile import make_hostile

    make_hostile(tmp_path / "h")
    r = invoke(runner, "index", tmp_path / "h", "--index", index_dir, "--model", tiny_spec, "-q")
    assert r.exit_code == 0
    assert "4 failed" in r.stderr and "empty file" in r.stderr
    r = invoke(runner, "info", "--index", index_dir)
    assert "4 failed" in r.stdout and "not an image" in r.stdout


def test_models_lists_licences(runner):
    r = invoke(runner, "models")
    assert r.exit_code == 0
    assert "offline" in r.stdout and "Apache-2.0" in r.stdout and "clip" in r.stdout


@pytest.mark.slow
def test_default_encoder_is_offline_and_named(runner, image_dir, index_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-clip-weights"))
    r = invoke(runner, "index", image_dir, "--index", index_dir, "-q")
    assert r.exit_code == 0, r.output
    assert "encoder: offline:fast-v2 (dim 384)" in r.stderr
    r = invoke(runner, "search", "a dog", "--index", index_dir, "--json")
    assert json.loads(r.stdout)["encoder"] == "offline:fast-v2"


def test_rebuild_with_a_missing_folder_keeps_the_index(runner, image_dir, index_dir, tmp_path, tiny_spec):
    invoke(runner, "index", image_dir, "--index", index_dir, "--model", tiny_spec, "-q")
    r = invoke(runner, "index", tmp_path / "typo", "--index", index_dir, "--rebuild", "-q")
    assert r.exit_code == 1 and "not a folder" in r.stderr
    assert json.loads(invoke(runner, "info", "--index", index_dir, "--json").stdout)["ok"] == 9


def test_bad_index_locations_are_one_line_errors(runner, tmp_path, image_dir, tiny_spec):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    r = invoke(runner, "search", "x", "--index", afile)
    assert r.exit_code == 1 and "no index at" in r.stderr
    r = invoke(runner, "index", image_dir, "--index", afile, "--model", tiny_spec)
    assert r.exit_code == 1 and "must be a folder" in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.db").write_bytes(b"this is not sqlite" * 100)
    for args in (("search", "x"), ("info",), ("index", image_dir, "--model", tiny_spec)):
        r = invoke(runner, *args, "--index", bad)
        assert r.exit_code == 1 and "index database is damaged" in r.stderr, args
        assert "keep a copy" in r.stderr and "re-index" not in r.stderr, args
        assert f"searchengine doctor --index {bad}" in r.stderr, args


def test_se_model_does_not_override_an_existing_index(runner, image_dir, index_dir, tiny_spec, monkeypatch):
    invoke(runner, "index", image_dir, "--index", index_dir, "--model", tiny_spec, "-q")
    monkeypatch.setenv("SE_MODEL", "offline")
    r = invoke(runner, "search", "x", "--index", index_dir, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["encoder"] == "clip:se-tiny:random"
    r = invoke(runner, "index", image_dir, "--index", index_dir, "-q")
    assert r.exit_code == 0
