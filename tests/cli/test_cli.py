"""CLI tests through click's runner: real data, real tearsheet, clean errors."""

from __future__ import annotations

import re

from click.testing import CliRunner

from llmbt.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_of_every_command():
    for args in ([], ["run"], ["data"], ["data", "fetch"], ["strategies"]):
        res = invoke(*args, "--help")
        assert res.exit_code == 0, res.output
        assert "Usage" in res.output
    assert "--commission" in invoke("run", "--help").output


def test_run_writes_tearsheet_with_strategy_and_benchmark(tmp_path):
    report = tmp_path / "goog.html"
    res = invoke("run", "--strategy", "sma_cross", "--data", "sample:GOOG", "--start", "2010-01-01",
                 "--cash", "100000", "--commission", "0.001", "--report", str(report))
    assert res.exit_code == 0, res.output
    html = report.read_text()
    assert "sma_cross" in html and "buy_and_hold" in html
    assert "Sharpe" in res.output and "tearsheet:" in res.output
    # one window and one benchmark everywhere: the page repeats the table's numbers (QuantStats'
    # matched dates would start both series at the strategy's first trade, 8 Mar 2010)
    table, page = table_rows(res.output), page_rows(html)
    assert table["Total return"] == {"sma_cross": "8.39%", "buy_and_hold": "26.94%"}
    assert table["Sharpe"] == {"sma_cross": "0.23", "buy_and_hold": "0.43"}
    same = {"Total return": "Cumulative Return", "CAGR": "CAGR﹪", "Sharpe": "Sharpe",
            "Sortino": "Sortino", "Max drawdown": "Max Drawdown", "Volatility (ann.)": "Volatility (ann.)"}
    assert {m: page[p] for m, p in same.items()} == {m: table[m] for m in same}
    assert re.search(r"4 Jan, 2010 - +1 Mar, 2013", html) and "matched dates" not in html


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """The terminal metrics table as {metric: {column: cell}}."""
    lines = [[c.strip() for c in line.strip()[1:-1].split("│" if "│" in line else "┃")]
             for line in output.splitlines() if line.count("│") + line.count("┃") >= 3]
    header = lines[0]
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in lines[1:]}


def page_rows(html: str) -> dict[str, dict[str, str]]:
    """The tearsheet's metrics table as {metric: {column: cell}}."""
    table = html[html.index("<table"):html.index("</table>")]
    header = re.findall(r"<th>(.*?)</th>", table)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    return {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows if len(r) == len(header)}


def test_run_from_yaml_with_flag_override(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("strategy: sma_cross\ndata: sample:GOOG\nstart: '2012-01-01'\nparams: {fast: 5}\n")
    saved = tmp_path / "resolved.yaml"
    res = invoke("run", "--config", str(cfg), "--param", "slow=40", "--no-report",
                 "--save-config", str(saved))
    assert res.exit_code == 0, res.output
    text = saved.read_text()
    assert "fast: 5" in text and "slow: 40" in text  # --param values are stored typed


def test_bad_inputs_give_one_line_errors_not_tracebacks(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    cases = [
        (["run", "--strategy", "sma_crss", "--no-report"], "Did you mean 'sma_cross'"),
        (["run", "--data", "sampel:GOOG", "--no-report"], "Did you mean"),
        (["run", "--data", "sample:GOGL", "--no-report"], "GOOG"),
        (["run", "--param", "fast", "--no-report"], "key=value"),
        (["run", "--config", str(tmp_path / "nope.yaml")], "not found"),
        (["run", "--start", "2020-01-01", "--no-report"], "2020"),
        (["run", "--report", str(tmp_path / "x.pdf")], ".html"),
        (["run", "--strategy", "llm_sentiment", "--model-schedule", "bad", "--no-report"],
         "--model-schedule 'bad' not found"),
        (["compare", "--start", "2012-06-01", "--arm", "lexicon", "--arm",
          "name=pit,schedule=bad"], "--arm pit: --model-schedule 'bad' not found"),
        (["run", "--strategy", "llm_sentiment", "--mode", "headlines", "--no-report"],
         "--mode headlines needs --news FILE"),
        (["run", "--strategy", "llm_sentiment", "--news", str(tmp_path / "none.csv"), "--no-report"],
         "none.csv': file not found"),
        (["run", "--strategy", "llm_sentiment", "--anonymize", "--names", str(tmp_path / "n.csv"),
          "--no-report"], "n.csv' not found"),
    ]
    for args, fragment in cases:
        res = CliRunner().invoke(cli, args)
        assert res.exit_code != 0, args
        assert "Traceback" not in res.output and res.exception.__class__ is SystemExit, args
        assert fragment in res.output, (args, res.output)
        # the error alone: no header of a run that never started, no arm run before it
        assert res.output.splitlines() == [res.output.strip()], (args, res.output)
        assert res.output.startswith("Error: "), (args, res.output)


def test_run_says_its_header_once_started_before_its_results():
    res = invoke("run", "--strategy", "sma_cross", "--start", "2013-01-01", "--no-report")
    assert res.exit_code == 0, res.output
    assert re.fullmatch(r"run [0-9a-f]{12}: sma_cross on sample:GOOG", res.stdout.splitlines()[0])


def test_strategies_lists_baselines():
    out = invoke("strategies").output
    assert "sma_cross" in out and "buy_and_hold" in out


def test_example_yaml_runs():
    res = invoke("run", "--config", "examples/sma_cross.yaml", "--no-report")
    assert res.exit_code == 0, res.output


def test_the_docs_list_every_metric():
    from helpers import ROOT

    from llmbt.reports import METRICS

    guide = ROOT.joinpath("docs", "guides", "walk-forward-and-statistics.md").read_text()
    for name in METRICS:
        assert name in guide, name


def test_too_few_bars_for_the_warm_up_is_one_clear_line(tmp_path):
    one_row = tmp_path / "one_row.csv"
    one_row.write_text("date,open,high,low,close,volume\n2020-01-02,100,104,95,100,1000\n")
    res = CliRunner().invoke(cli, ["run", "--strategy", "sma_cross", "--data", f"csv:{one_row}",
                                   "--start", "2020-01-01", "--no-report"])
    assert res.exit_code != 0 and res.exception.__class__ is SystemExit
    lines = [line for line in res.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for fragment in ("1 bar", "31 bars", "slow=30", "--start"):
        assert fragment in lines[0], lines[0]
    fast = CliRunner().invoke(cli, ["run", "--strategy", "sma_cross", "--data", "sample:GOOG",
                                    "--start", "2013-01-01", "--end", "2013-01-31",
                                    "--param", "slow=21", "--no-report"])
    assert "needs at least 22 bars" in fast.output and "has 21 bars" in fast.output, fast.output
