"""Studies: every table the docs include names a study whose recipe still matches, and the quick
studies regenerate their committed tables byte for byte from a cold cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.errors import ConfigError
from llmbt.experiments.studies import load_recipe
from llmbt.reports.studies import blocks_in

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks() -> list[tuple[Path, str, str, str]]:
    return [(page, *found) for page in PAGES for found in blocks_in(page.read_text())]


def test_every_table_in_the_docs_names_a_study_whose_recipe_still_matches() -> None:
    blocks = _blocks()
    assert {name for _, name, _, _ in blocks} >= {"demo", "sma_goog", "universe_pit_defaults"}
    for page, name, recipe_hash, table in blocks:
        recipe = load_recipe(ROOT / "studies" / f"{name}.yaml")
        assert recipe.fingerprint() == recipe_hash, f"{page}: {name}'s recipe changed; re-run it"
        assert table.startswith("| Metric |"), f"{page}: the {name} table is empty"
        results = blocks_in((ROOT / "docs" / "results" / f"{name}.md").read_text())
        assert [t for n, _, t in results if n == name] == [table], f"{page}: {name} is stale"


def test_every_recipe_loads_and_has_its_results_page() -> None:
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        recipe = load_recipe(path)
        assert (ROOT / "docs" / "results" / f"{recipe.name}.md").is_file(), recipe.name


@pytest.mark.parametrize("name", [load_recipe(p).name for p in sorted((ROOT / "studies").glob("*.yaml"))
                                  if load_recipe(p).quick])
def test_a_quick_study_regenerates_its_table_from_a_cold_cache(name, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(cli, ["study", "run", f"studies/{name}.yaml", "--check",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output


def test_check_fails_when_the_published_table_differs(tmp_path, monkeypatch) -> None:
    docs = tmp_path / "docs" / "results"
    docs.mkdir(parents=True)
    page = (ROOT / "docs" / "results" / "sma_goog.md").read_text()
    docs.joinpath("sma_goog.md").write_text(page.replace("| Sharpe | 0.", "| Sharpe | 9."))
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    res = CliRunner().invoke(cli, ["study", "run", str(ROOT / "studies" / "sma_goog.yaml"),
                                   "--check", "--docs", str(tmp_path / "docs"),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "differ from the docs: sma_goog" in res.output


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nkind: run\nconfig: {strategy: sma_cross}\n", "must be the file's name 'bad'"),
    ("name: bad\nkind: backtest\nconfig: {}\n", "kind 'backtest' must be one of run, walkforward"),
    ("name: bad\nkind: run\nconfg: {}\n", "unknown key 'confg'. Did you mean 'config'"),
    ("name: bad\nkind: run\nconfig: {stratgy: sma_cross}\n", "study bad: study bad config: unknown key"),
])
def test_a_bad_recipe_is_one_clear_line(tmp_path, text, expected) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        load_recipe(path)
