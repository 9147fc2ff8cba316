"""The shape the architecture keeps: short functions, small classes, one-way imports.

A function is measured from its ``def`` line to its last line (decorators and the
docstring count, blank lines too); a class by the functions defined in its body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("searchengine", "indexer", "web")
MAX_FUNCTION_LINES = 80
MAX_METHODS = 25


def _modules():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def _shapes():
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield "function", f"{rel}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1
            elif isinstance(node, ast.ClassDef):
                methods = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
                yield "class", f"{rel}:{node.lineno} {node.name}", len(methods)


def test_no_function_longer_than_80_lines():
    long = [(where, n) for kind, where, n in _shapes() if kind == "function" and n > MAX_FUNCTION_LINES]
    assert not long, long


def test_no_class_with_more_than_25_methods():
    big = [(where, n) for kind, where, n in _shapes() if kind == "class" and n > MAX_METHODS]
    assert not big, big


@pytest.mark.parametrize("package", ["searchengine", "indexer"])
def test_the_core_never_imports_the_edges(package):
    """``indexer -> searchengine <- web``; only the CLI (the composition root) imports all."""
    banned = {"searchengine": ("indexer", "web"), "indexer": ("web",)}[package]
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in banned]
    assert not found, found


def test_the_web_edge_never_imports_the_indexer():
    found = []
    for path in sorted((REPO / "web").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
            found += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] == "indexer"]
    assert not found, found
