"""Every ``--flag`` the package names (error lines, help, docstrings) is a flag of a ``bt`` command,
and the messages that named missing flags now name what the user can actually set."""

from __future__ import annotations

import ast
import re

import click
import pytest
from click.testing import CliRunner
from helpers import ROOT

from llmbt.cli import cli
from llmbt.errors import ConfigError

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w-])")
NOT_BT = {"--help": "click's help option of every command", "--head": "`ray start --head`",
          "--no-deps": "`pip install --no-deps`",
          "--name": "a placeholder in _flag_decl's docstring", "--no-name": "the same placeholder",
          "--dirty": "`git describe --dirty` (results.py)",
          "--porcelain": "`git status --porcelain` (results.py)",
          "--untracked-files": "`git status --untracked-files=no` (results.py)"}


def bt_flags(command: click.Command = cli) -> set[str]:
    """Every long option of ``bt`` and its subcommands."""
    flags = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    for sub in getattr(command, "commands", {}).values():
        flags |= bt_flags(sub)
    return flags


def named_flags() -> dict[str, list[str]]:
    """``--flag`` -> where the package's string literals (f-string parts too) name it."""
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "build", "dist") or any(p.startswith(".") for p in rel.parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for flag in FLAG.findall(node.value):
                    found.setdefault(flag, []).append(f"{rel}:{node.lineno}")
    return found


def test_every_flag_the_package_names_exists() -> None:
    named, real = named_flags(), bt_flags()
    assert {"--val", "--refresh", "--start", "--max-val"} <= set(named)  # the scan sees them
    missing = {flag: where for flag, where in named.items() if flag not in real | set(NOT_BT)}
    assert not missing, f"flags no bt command has: {missing}"


def test_walkforward_settings_without_a_flag_are_named_as_fields() -> None:
    from llmbt.engine.config import RunConfig
    from llmbt.experiments.walkforward import WalkForwardConfig

    with pytest.raises(ConfigError, match=r"^val_fraction 0\.7 must be in \(0, 0\.5\), e\.g\. 0\.15 "
                                          r"\(a WalkForwardConfig field"):
        WalkForwardConfig(val_fraction=0.7)
    with pytest.raises(ConfigError, match=r"^label_method 'vol': a universe walk-forward labels "
                                          r"headlines by quantiles .*use quantile"):
        WalkForwardConfig(run=RunConfig(strategy="llm_news_portfolio"), label_method="vol")


def test_data_fetch_has_the_refresh_its_cache_error_names(monkeypatch, tmp_path) -> None:
    from llmbt.errors import DataError
    from llmbt.feeds import load_prices, sources
    from llmbt.feeds.prices import cache_path

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path))
    calls: list[str] = []

    def download(ticker, start, end, interval):
        calls.append(ticker)
        return load_prices("sample:GOOG", "2013-02-01", "2013-02-28").rename(columns=str.title)

    monkeypatch.setattr(sources, "_yahoo_download", download)
    fetch = ["data", "fetch", "yahoo:GOOG", "--start", "2013-02-01", "--end", "2013-02-28"]
    assert CliRunner().invoke(cli, fetch).exit_code == 0 and calls == ["GOOG"]
    cache_path("yahoo:GOOG", "1d").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"price cache .* is unreadable .*; delete it, or refetch "
                                        r"with `bt data fetch URI --start \.\.\. --end \.\.\. --refresh`$"):
        load_prices("yahoo:GOOG", "2013-02-01", "2013-02-28")
    res = CliRunner().invoke(cli, [*fetch, "--refresh"])
    assert res.exit_code == 0, res.output
    assert calls == ["GOOG", "GOOG"] and res.output.startswith("19 bars 2013-02-01")
