"""House rule: every module of the package (tests aside) is at most 400 lines."""

from __future__ import annotations

from pathlib import Path

from helpers import ROOT

MAX_LINES = 400


def package_modules() -> list[Path]:
    """Every .py file of the package: the root modules and the five package folders."""
    folders = ("engine", "feeds", "reports", "signals_cache", "strategies")
    return sorted(ROOT.glob("*.py")) + [p for f in folders for p in sorted((ROOT / f).rglob("*.py"))]


def test_every_module_is_at_most_400_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in package_modules()}
    assert "signals_cache/model/loading.py" in sizes  # the walk sees the package
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, f"split these modules by concern: {too_long}"
