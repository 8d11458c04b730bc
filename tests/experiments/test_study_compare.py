"""The ``compare`` study kind and a recipe's ``prepare`` script; the schedule bench's figures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from helpers import save_tiny

from llmbt.cli import cli
from llmbt.errors import ConfigError, LlmbtError
from llmbt.experiments.studies import load_recipe, prepare
from llmbt.reports.studies import blocks_in

PREPARE = """import sys
from pathlib import Path
Path(sys.argv[1]).write_text("cutoff,model\\n2012-03-30,{model}\\n")
"""


def _recipe(tmp_path: Path, tiny: Path) -> Path:
    script = tmp_path / "make_schedule.py"
    script.write_text(PREPARE.format(model=tiny))
    schedule = tmp_path / "schedule.csv"
    path = tmp_path / "pit.yaml"
    path.write_text(f"name: pit\nkind: compare\nprepare: [{script}, {schedule}]\n"
                    "config: {strategy: llm_sentiment, data: 'sample:GOOG', start: '2012-09-01', "
                    "end: '2013-03-01', batch_size: 32}\n"
                    f"compare:\n  arms: ['name=pit,schedule={schedule}', 'name=plain,model={tiny}']\n")
    return path


def test_a_compare_study_prepares_its_models_then_publishes_bt_compares_table(
        tmp_path, tokenizer_dir, llmbt_home) -> None:
    tiny = save_tiny(tmp_path / "tiny", tokenizer_dir, seed=3)
    recipe = _recipe(tmp_path, tiny)
    args = ["study", "run", str(recipe), "--out", str(tmp_path / "out"), "--docs", str(tmp_path / "docs")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    blocks = {name: table for name, _, table in
              blocks_in((tmp_path / "docs" / "results" / "pit.md").read_text())}
    assert set(blocks) == {"pit", "pit/significance"}
    assert blocks["pit"].startswith("| Metric | pit | plain | buy_and_hold |")
    assert "| DSR |" in blocks["pit"] and "Cache hit rate" not in blocks["pit"]
    # the schedule names the same model the plain arm is: the same Sharpe, a zero difference
    sharpe = next(row for row in blocks["pit"].splitlines() if row.startswith("| Sharpe |"))
    assert sharpe.split("|")[2] == sharpe.split("|")[3]
    assert "Hindsight A/B: the point-in-time arm pit" in blocks["pit/significance"]
    assert "2 trials of this run only (--trials run)" in blocks["pit/significance"]
    page = (tmp_path / "docs" / "results" / "pit.md").read_text()
    assert "pit hindsight: none possible" in page
    assert CliRunner().invoke(cli, [*args, "--check"]).exit_code == 0  # warm: the same tables


def test_a_failing_prepare_script_stops_the_study_with_its_last_lines(tmp_path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("print('making models')\nraise SystemExit('no room left on the disk')\n")
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nkind: run\nprepare: {script}\nconfig: {{strategy: sma_cross}}\n")
    with pytest.raises(ConfigError, match=r"(?s)prepare .*broken\.py exited with 1:.*no room left"):
        prepare(load_recipe(path))


@pytest.mark.parametrize(("text", "expected"), [
    ("compare: {arms: [a]}\n", "give two or more"),
    ("compare: {arms: [a, b], horizon: 0}\n", "horizon 0 must be a whole number"),
    ("compare: {arms: [a, b], horizn: 5}\n", "unknown key 'horizn'. Did you mean 'horizon'"),
    ("compare: {arms: [a, 'name=b,modle=x']}\n", "modle"),
    ("prepare: make_models.sh\ncompare: {arms: [a, b]}\n",
     "prepare 'make_models.sh' must be a Python script"),
])
def test_a_bad_compare_recipe_is_one_clear_line(tmp_path, text, expected) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nkind: compare\nconfig: {strategy: llm_sentiment}\n" + text)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        load_recipe(path)


def test_a_recipe_without_prepare_keeps_its_hash() -> None:
    from helpers import ROOT

    recipe = load_recipe(ROOT / "studies" / "sma_goog.yaml")
    page = (ROOT / "docs" / "results" / "sma_goog.md").read_text()
    assert not recipe.prepare and f"recipe:{recipe.fingerprint()}" in page


def _bt_run_output(items_scored: int, seconds: float, load: float) -> str:
    """The facts ``bt run`` prints, from the functions that print them."""
    from llmbt.signals_cache.scoring.pipeline import cost_facts

    result = SimpleNamespace(model_calls=3 if items_scored else 0, items_scored=items_scored,
                             hits=414 - items_scored, misses=items_scored, seconds=seconds,
                             items_per_s=items_scored / seconds)
    facts = cost_facts(result, 414, load)
    return "scoring: 0/123 prompts (0%)\n" + "".join(f"{k}: {v}\n" for k, v in facts.items())


def test_the_schedule_bench_splits_cold_time_into_loads_and_scoring_and_times_cached_runs(
        tmp_path, tiny, monkeypatch) -> None:
    from llmbt.experiments.bench import schedule as bench

    sched = tmp_path / "s.csv"
    sched.write_text(f"cutoff,model\n2011-06-30,{tiny}\n2011-12-31,{tiny}\n")
    seen, times = [], iter([10.0, 2.0, 12.0, 2.2, 9.0, 2.1])

    def fake_run(args):
        seen.append(args)
        cached = len(seen) % 2 == 0
        if "--model-schedule" in args and not cached:
            assert Path(args[args.index("--model-schedule") + 1]).read_text().count("\n") == 3
        return next(times), _bt_run_output(0 if cached else 414, 6.0, 0.0 if cached else 2.5)

    monkeypatch.setattr(bench, "timed_run", fake_run)
    columns = bench.bench_schedule(bench.ScheduleBench(schedule=str(sched), model=str(tiny), repeats=1))
    assert list(columns) == list(bench.ARMS)
    assert columns["schedule"]["cold_scoring_s"] == pytest.approx(3.5)  # 6.0 s less 2.5 s of loads
    assert columns["schedule"]["cold_model_load_s"] == 2.5
    assert columns["schedule"]["cold_process_vs_one_model"] == pytest.approx(10 / 9)
    assert columns["one model, every cutoff"]["cached_process_vs_one_model"] == pytest.approx(2.2 / 2.1)
    assert seen[4][-2:] == ["--model", str(tiny)]
    monkeypatch.setattr(bench, "timed_run", lambda args: (1.0, _bt_run_output(414, 6.0, 2.5)))
    with pytest.raises(LlmbtError, match="cached run of the schedule still called a model"):
        bench.bench_schedule(bench.ScheduleBench(schedule=str(sched), model=str(tiny), repeats=1))
