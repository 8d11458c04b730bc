"""``bt study``: run the recipe of a published result and write the table the docs include."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from llmbt.cli.base import cli


@cli.group()
def study() -> None:
    """Studies: one recipe (studies/NAME.yaml) per published result."""


@study.command("run")
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", default="out/studies", show_default=True,
              help="Folder of the studies' results folders (one per study).")
@click.option("--docs", default="docs", show_default=True,
              help="The docs folder: results/NAME.md is written there and every marked table "
                   "of the study in it (and in README.md) is rewritten.")
@click.option("--check", is_flag=True, help="Write nothing: exit 1 when a regenerated table "
              "differs from the one in DOCS/results/NAME.md, or a figure the docs quote from it "
              "differs from its cell.")
def run_cmd(recipes: tuple[str, ...], out: str, docs: str, check: bool) -> None:
    """Run each recipe (from the caches when warm) and write its table.

    Example: bt study run studies/demo.yaml
    """
    from llmbt.errors import LlmbtError
    from llmbt.experiments.studies import load_recipe, run_study
    stale = []
    for path in recipes:
        recipe = load_recipe(path)
        res = run_study(recipe, Path(out) / recipe.name)
        tables = _tables(recipe.kind, res)
        click.echo(f"study {recipe.name}: run {res.run_id}\n" + "\n".join(tables.values()))
        if check:
            fresh = _same(Path(docs), recipe.name, tables) and _quotes_match(Path(docs), recipe.name, tables)
            stale += [] if fresh else [recipe.name]
        else:
            _write(recipe, res, tables, Path(path), Path(docs))
    if stale:
        raise LlmbtError(f"regenerated tables differ from the docs: {', '.join(stale)}; run "
                         "bt study run without --check and commit the result")


@study.command("list")
@click.option("--dir", "folder", default="studies", show_default=True, help="The recipes' folder.")
def list_cmd(folder: str) -> None:
    """The recipes, their kind and whether CI runs them (quick)."""
    from llmbt.experiments.studies import load_recipe

    for path in sorted(Path(folder).glob("*.yaml")):
        recipe = load_recipe(path)
        click.echo(f"{recipe.name:28} {recipe.kind:12} {'quick' if recipe.quick else 'slow':6} "
                   f"{recipe.title}")


def _tables(kind: str, res) -> dict[str, str]:
    """The study's tables by block name (``""``: the main one)."""
    from llmbt.reports.studies import render_tables

    if res.audit is not None:
        from llmbt.reports.audit import audit_tables

        return audit_tables(res.audit.engine, res.audit.model)
    if res.compared is not None:  # bt compare --from the folder, the run's own arms as the trials
        from llmbt.reports.compare import compare_results
        from llmbt.reports.studies import comparison_tables

        comp = compare_results(res.compared, say=lambda _: None, trials="run")
        return comparison_tables(comp.metrics, comp.significance)
    tables = render_tables(kind, res.returns, res.extra, res.columns,
                           *_folds_and_statistics(res.written))
    if res.signal is not None:
        from llmbt.reports.studies import signal_table

        tables["signal"] = signal_table(*res.signal)
    return tables


def _folds_and_statistics(written: dict | None) -> tuple:
    """A walk-forward study's folds and statistics table, from its results folder as the study
    read it back; (None, "") for the other kinds."""
    if written is None:
        return None, ""
    from llmbt.reports.study_stats import walkforward_statistics

    return written["folds"], walkforward_statistics(written)


def _same(docs: Path, name: str, tables: dict[str, str]) -> bool:
    from llmbt.reports.studies import block_name, blocks_in

    page = docs / "results" / f"{name}.md"
    found = {n: t for n, _, t in blocks_in(page.read_text(encoding="utf-8"))} if page.is_file() else {}
    return all(found.get(block_name(name, key)) == table for key, table in tables.items())


def _pages(docs: Path) -> list[Path]:
    """The markdown files whose blocks and quotes ``bt study run`` rewrites."""
    return [md for md in [Path("README.md"), *sorted(docs.rglob("*.md"))] if md.is_file()]


def _quotes_match(docs: Path, name: str, tables: dict[str, str]) -> bool:
    """Whether every figure the docs quote from the study's tables equals its regenerated cell."""
    from llmbt.reports.studies import block_name
    from llmbt.reports.study_quotes import quotes_in, table_cell

    by_block = {block_name(name, key): table for key, table in tables.items()}
    return all(table_cell(by_block[q.block], q.row, q.column, f"{md}: {q.block}") == q.text
               for md in _pages(docs) for q in quotes_in(md.read_text(encoding="utf-8"))
               if q.block in by_block)


def _write(recipe, res, tables: dict[str, str], path: Path, docs: Path) -> None:
    from llmbt.experiments.results import git_state
    from llmbt.experiments.studies import machine
    from llmbt.reports.studies import block_name, replace_blocks, results_markdown
    from llmbt.reports.study_quotes import replace_quotes

    state = git_state()
    commit = (state["git_commit"] or "unknown")[:7] + (" (dirty)" if state["dirty"] else "")
    provenance = (f"Study `{recipe.name}` ({path.as_posix()}), run {res.run_id}, recipe "
                  f"{recipe.fingerprint()}, commit {commit}, {machine()}, "
                  f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.")
    page = docs / "results" / f"{recipe.name}.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(results_markdown(recipe.title, recipe.name, recipe.fingerprint(), tables,
                                     provenance, res.facts, recipe.notes), encoding="utf-8")
    click.echo(f"wrote {page}")
    for md in [md for md in _pages(docs) if md != page]:
        changed = [replace_blocks(md, block_name(recipe.name, key), recipe.fingerprint(), table)
                   | replace_quotes(md, block_name(recipe.name, key), table) for key, table in tables.items()]
        if any(changed):
            click.echo(f"updated {md}")
