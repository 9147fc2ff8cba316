"""The README documents every command and setting."""

import re

import searchengine.config as config_module
from searchengine.cli import cli
from searchengine.config import Settings
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_every_command_is_documented_with_help():
    for name, command in cli.commands.items():
        assert f"searchengine {name}" in README, name
        assert command.help, name


def test_every_setting_is_documented():
    for var in re.findall(r"\bSE_[A-Z_]+", config_module.__doc__):
        assert f"`{var}`" in README, var
    # every field has a variable, except those the docstring names as set otherwise
    fields = set(Settings.__dataclass_fields__)
    documented = {"index_path", "model", "batch_size", "max_pixels", "captioner", "ocr", "api_key"}
    documented |= {"cors_origins", "max_upload_bytes", "roots", "max_upload_pixels", "refresh_interval"}
    documented |= {"allowed_hosts", "public_reads"}
    assert fields == documented
    for name in ("roots", "max_upload_pixels", "refresh_interval"):
        assert f"``{name}``" in config_module.__doc__, name


def test_readme_opens_with_the_two_commands():
    head = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "searchengine index data/sample" in head
    assert "python -m pytest" in head
    assert (REPO / ".ci" / "run").read_text().rstrip().endswith(".venv/bin/python -m pytest")
