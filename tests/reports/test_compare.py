"""A/B comparison: arm parsing, the comparison on real GOOG returns, and `bt compare --arm` end to end
on a tiny random Llama (pages written, statistics present, plain wording when not significant)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import norm

import llmbt.cli.wf  # noqa: F401  (registers compare)
from llmbt.cli import cli
from llmbt.errors import ConfigError, LlmbtError
from llmbt.experiments.arms import Arm, parse_arm
from llmbt.feeds import load_prices
from llmbt.reports.compare import calibration_table, compare, paired_hits, signal_quality


def test_parse_arm():
    assert parse_arm("smollm2-135m") == Arm("smollm2-135m", model="smollm2-135m")
    assert parse_arm("name=lora, adapter=a/b") == Arm("lora", adapter="a/b")
    with pytest.raises(ConfigError, match="Did you mean 'prompt'"):
        parse_arm("name=x,promt=bars-v1")
    with pytest.raises(ConfigError, match="has no name="):
        parse_arm("prompt=bars-v1")


def goog_signals() -> tuple[dict[str, pd.Series], dict[str, pd.DataFrame]]:
    """Two real, deterministic 'models' on GOOG 2010-2012: momentum and its contrarian twin."""
    prices = load_prices("sample:GOOG", "2010-01-01", "2012-12-31")
    close = prices["close"]
    forward = (close.shift(-5) / prices["open"].shift(-1) - 1).dropna()
    momentum = np.tanh(close.pct_change(20) * 10).reindex(forward.index).fillna(0.0)
    daily = close.pct_change().fillna(0.0)
    scores, returns = {}, {}
    for name, s in (("momentum", momentum), ("contrarian", -momentum * 0.5)):
        label = np.where(forward > 0.01, "bullish", np.where(forward < -0.01, "bearish", "neutral"))
        pred = np.where(s > 0.2, "bullish", np.where(s < -0.2, "bearish", "neutral"))
        scores[name] = pd.DataFrame({"score": s, "confidence": 0.4 + 0.5 * s.abs(), "label": label,
                                     "predicted": pred, "forward_return": forward})
        returns[name] = (np.sign(s).shift(1).fillna(0) * daily.reindex(s.index)).rename(name)
    returns["buy_and_hold"] = daily.reindex(forward.index)
    return returns, scores


def test_compare_on_real_returns_reports_every_number():
    returns, scores = goog_signals()
    comp = compare(returns, scores, horizon=5, n_boot=400)
    assert list(comp.metrics.columns) == ["momentum", "contrarian", "buy_and_hold"]
    for row in ("CAGR", "Sharpe", "Sortino", "Max drawdown", "Calmar", "Win rate (bars)",
                "Directional accuracy", "Profitable signals", "Mean confidence",
                "Calibration error (ECE)", "PSR (SR > 0)", "DSR"):
        assert row in comp.metrics.index, row
    # the contrarian twin's directional hits are exactly the momentum misses (same bars, opposite sign)
    hits = comp.metrics.loc["Directional accuracy"]
    assert hits["momentum"] + hits["contrarian"] == pytest.approx(1.0, abs=0.02)
    # every pair with a signal disagrees; McNemar counts one bar in 5 (non-overlapping 5-bar returns)
    mom = scores["momentum"]
    thinned = mom.iloc[::5]
    signalled = int(((thinned["score"] != 0) & (thinned["forward_return"] != 0)).sum())
    mc = comp.stats["mcnemar"]
    assert mc["b"] + mc["c"] == signalled == mc["pairs"] and mc["bars"] == len(thinned) and signalled > 100
    assert comp.metrics.loc["DSR", "momentum"] <= comp.metrics.loc["PSR (SR > 0)", "momentum"] + 1e-12
    assert any("Sharpe" in s for s in comp.significance)


def _table_rows(text: str) -> dict[str, list[str]]:
    """The body rows of a printed rich table: metric -> its cells."""
    rows = [[c.strip() for c in line.strip().strip("│").split("│")]
            for line in text.splitlines() if line.startswith("│")]
    return {cells[0]: cells[1:] for cells in rows}


def test_the_printed_table_shows_percentages_as_bt_run_does(tmp_path):
    import re

    from llmbt.reports.compare import _print

    returns, scores = goog_signals()
    extra = {"momentum": {"Exposure": 0.5}, "contrarian": {"Exposure": 0.25}}
    comp = compare(returns, scores, horizon=5, n_boot=200, extra=extra)
    said: list[str] = []
    _print(comp, tmp_path, said.append)
    rows = _table_rows(said[0])
    percent = re.compile(r"-?\d+\.\d\d%")
    for row in ("Total return", "CAGR", "Max drawdown", "Volatility (ann.)", "Win rate (bars)",
                "Directional accuracy", "Profitable signals", "Label accuracy"):
        assert all(percent.fullmatch(cell) for cell in rows[row] if cell), (row, rows[row])
    metrics = comp.metrics
    assert rows["Total return"] == [f"{metrics.loc['Total return', m]:.2%}" for m in metrics.columns]
    assert rows["Exposure"] == ["50.0%", "25.0%", ""]  # buy-and-hold has none: a blank, not nan
    assert rows["Sharpe"] == [f"{metrics.loc['Sharpe', m]:.2f}" for m in metrics.columns]
    assert rows["DSR"][2] == "" and rows["DSR"][0] == f"{metrics.loc['DSR', 'momentum']:.2f}"
    assert not re.search(r"(?<![\d.])-?0\.\d{4}\b", said[0])  # no bare fraction anywhere


def test_identical_models_are_reported_as_not_significant():
    returns, scores = goog_signals()
    same = {"a": returns["momentum"].rename("a"), "b": returns["momentum"].rename("b")}
    comp = compare(same, {"a": scores["momentum"], "b": scores["momentum"]}, horizon=5, n_boot=200)
    assert comp.stats["sharpe_diff"]["diff"] == 0
    assert "not significant" in " ".join(comp.significance).lower()


def test_dsr_deflates_for_the_models_tried_on_the_same_bars():
    from llmbt.reports.stats import expected_max_sharpe, probabilistic_sharpe_ratio

    returns, scores = goog_signals()
    returns["contrarian"] = returns["contrarian"].iloc[3:]  # trials are measured on the common bars
    comp = compare(returns, scores, horizon=5, n_boot=100)
    common = pd.concat([returns["momentum"], returns["contrarian"]], axis=1, join="inner")
    assert len(common) == len(returns["momentum"]) - 3
    per_bar = common.mean() / common.std(ddof=1)
    var = float(per_bar.var(ddof=1))  # two trials: (SR1 - SR2)**2 / 2
    assert var == pytest.approx((per_bar.iloc[0] - per_bar.iloc[1]) ** 2 / 2, rel=1e-12)
    dsr = comp.stats["dsr"]
    assert dsr["n_trials"] == comp.stats["n_trials"] == 2 and dsr["bars"] == len(common)
    assert dsr["trials"] == ["momentum", "contrarian"] and dsr["var_sharpe"] == pytest.approx(var)
    assert dsr["var_sharpe_annualised"] == pytest.approx(var * 252)
    # E[max] of 2 trials = sqrt(V) * gamma * Phi^-1(1 - 1/(2e)) (Phi^-1(1/2) = 0)
    sr0 = math.sqrt(var) * 0.5772156649 * norm.ppf(1 - 1 / (2 * math.e))
    assert dsr["expected_max_sharpe"] == pytest.approx(sr0 * math.sqrt(252), rel=1e-9)
    assert expected_max_sharpe(2, var) == pytest.approx(sr0, rel=1e-9)
    for name in ("momentum", "contrarian"):
        want = probabilistic_sharpe_ratio(returns[name], sr0)
        assert comp.metrics.loc["DSR", name] == pytest.approx(want, rel=1e-9)
        assert comp.metrics.loc["DSR", name] < comp.metrics.loc["PSR (SR > 0)", name]
    assert math.isnan(comp.metrics.loc["DSR", "buy_and_hold"])  # a benchmark, not a trial
    assert any("deflates for 2 trials (momentum, contrarian)" in s for s in comp.significance)


def test_fewer_than_two_trials_give_no_dsr_and_say_so():
    returns, scores = goog_signals()
    comp = compare(returns, scores, horizon=5, trials={"momentum": returns["momentum"]}, n_boot=100)
    assert comp.metrics.loc["DSR"].isna().all()
    assert comp.stats["dsr"]["note"] == "DSR needs ≥ 2 trials" and comp.stats["n_trials"] == 1
    text = " ".join(comp.significance)
    assert "the deflated Sharpe ratio is not reported (DSR needs ≥ 2 trials)" in text
    # a trial whose Sharpe is undefined (never traded: no variance) cannot enter the variance either
    flat = returns["contrarian"] * 0.0
    comp = compare(returns | {"contrarian": flat}, scores, horizon=5, n_boot=100)
    assert comp.stats["dsr"]["n_trials"] == 1 and comp.metrics.loc["DSR"].isna().all()


def test_the_dsr_sentence_names_a_trial_left_out_for_having_no_sharpe():
    returns, scores = goog_signals()
    idle = returns["contrarian"] * 0.0  # an arm that never traded
    trials = {"momentum": returns["momentum"], "contrarian": returns["contrarian"], "idle": idle}
    comp = compare(returns, scores, horizon=5, trials=trials, n_boot=100)
    assert comp.stats["dsr"]["n_trials"] == 2
    assert any("deflates for 2 trials (momentum, contrarian; not idle: no Sharpe ratio" in s
               for s in comp.significance), comp.significance


def hit_frames(n: int = 100) -> tuple[dict[str, pd.Series], dict[str, pd.DataFrame]]:
    """A is always long; B is wrong on bars 1-20; A has no signal (0) on bars 40-49; bars 60-69 have a
    zero forward return and no B signal. The raw model score is a biased 0.9 on every bar."""
    idx = pd.bdate_range("2021-01-04", periods=n, tz="UTC")
    fwd = pd.Series(0.01, idx)
    fwd.iloc[60:70] = 0.0
    sig_a, sig_b = pd.Series(0.5, idx), pd.Series(0.5, idx)
    sig_a.iloc[40:50] = 0.0
    sig_b.iloc[1:21], sig_b.iloc[60:70] = -0.5, 0.0
    rng = np.random.default_rng(1)
    returns = {m: pd.Series(rng.normal(0, 0.01, n), idx, name=m) for m in ("a", "b")}
    scores = {m: pd.DataFrame({"score": 0.9, "signal": sig, "confidence": 0.6, "label": "bullish",
                               "predicted": "bullish", "forward_return": fwd})
              for m, sig in (("a", sig_a), ("b", sig_b))}
    return returns, scores


def test_mcnemar_counts_non_overlapping_hits_of_the_traded_signal():
    returns, scores = hit_frames()
    # horizon 5: bars 0, 5, ..., 95; 40 and 45 (A no signal) and 60 and 65 (zero return) drop out.
    # B is wrong on 5, 10, 15, 20 -> b = 4, c = 0; exact p = 2 * 0.5**4 = 0.125
    comp = compare(returns, scores, horizon=5, n_boot=100)
    mc = comp.stats["mcnemar"]
    assert (mc["b"], mc["c"], mc["bars"], mc["pairs"]) == (4, 0, 20, 16)
    assert mc["p_value"] == pytest.approx(0.125) and mc["column"] == "signal"
    # overlapping 1-bar steps over the same 5-bar returns: 20 dependent discordant hits, p = 2 / 2**20
    over = compare(returns, scores, horizon=1, n_boot=100).stats["mcnemar"]
    assert (over["b"], over["c"], over["pairs"]) == (20, 0, 80)
    assert over["p_value"] == pytest.approx(2 / 2**20) and over["p_value"] < 0.05 < mc["p_value"]
    assert any("one bar in 5 (20 bars" in s for s in comp.significance)


def test_zero_signal_and_zero_return_count_as_in_bt_evaluate():
    from llmbt.signals_cache.finetune.evaluate import directional_metrics

    _, scores = hit_frames()
    a, b = scores["a"], scores["b"]
    hits_a, hits_b = paired_hits(a, b, 1)
    assert hits_a.iloc[40:50].isna().all() and hits_b.iloc[60:70].isna().all()
    assert hits_a.iloc[60:70].isna().all()  # a zero return is no hit and no miss
    assert hits_a.sum() == 80 and hits_b.sum() == 70  # b: 90 signals, 20 wrong
    for frame, hits in ((a, hits_a), (b, hits_b)):
        want = directional_metrics(frame["signal"].to_numpy(), frame["forward_return"].to_numpy())
        assert hits.mean() == pytest.approx(want["hit_rate"], rel=1e-12)
    quality = signal_quality(b)
    assert quality["Directional accuracy"] == pytest.approx(70 / 90)
    with pytest.raises(LlmbtError, match="horizon 0 must be a whole number of bars"):
        paired_hits(a, b, 0)


def test_calibration_table_bins_confidence():
    frame = pd.DataFrame({"confidence": [0.35, 0.5, 0.9, 0.95], "predicted": ["bullish"] * 4,
                          "label": ["bearish", "bullish", "bullish", "bullish"]})
    table = calibration_table(frame, bins=2)
    assert table["count"].tolist() == [2, 2] and table["hit_rate"].tolist() == [0.5, 1.0]


def _folds(ms: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"model": ["a", "b"], "bars": [80, 80], "exposure": [0.5, 0.25],
                         "trades": [4, 2], "eval_f1": [0.3, 0.4], "ms_per_item": ms,
                         "cache_hit_rate": [1.0, 0.5]})


def test_fold_extras_leave_out_the_ms_per_item_of_models_that_scored_nothing():
    from llmbt.reports.compare import _fold_extras

    index = pd.bdate_range("2012-01-02", periods=80, tz="UTC")
    returns = {m: pd.Series(0.0, index=index) for m in ("a", "b")}
    cached = _fold_extras(_folds([None, None]), returns)  # run_facts of fully cached runs
    assert all("ms per scored item" not in row for row in cached.values())
    assert cached["a"]["Exposure"] == 0.5 and cached["b"]["Cache hit rate"] == 0.5
    mixed = _fold_extras(_folds([None, 12.5]), returns)
    assert "ms per scored item" not in mixed["a"] and mixed["b"]["ms per scored item"] == 12.5
    assert mixed["a"]["Macro F1 (mean of folds)"] == 0.3  # a walk-forward's folds
    assert _fold_extras(_folds([None, None]), returns, one_window=True)["a"]["Macro F1"] == 0.3


def test_bt_compare_arms_end_to_end(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    out = tmp_path / "cmp"
    args = ["compare", "--start", "2012-09-01", "--end", "2012-12-31", "--model", str(tiny),
            "--arm", "name=zero-shot", "--arm", "name=few-shot,prompt=bars-fewshot-v1", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "zero-shot" in result.output and "comparison page" in result.output
    rows = _table_rows(result.output)  # one window: its macro F1, not a mean of folds
    assert "Macro F1" in rows and "(mean of folds)" not in result.output
    assert all(cell.endswith("%") for cell in rows["Total return"] + rows["Exposure"] if cell)
    for name in ("comparison.html", "tearsheet.html", "tearsheet-buy_and_hold.html", "compare.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / "compare.json").read_text())
    assert data["stats"]["candidate"] == "zero-shot"
    assert data["stats"]["dsr"]["trials"] == ["zero-shot", "few-shot"]  # the arms are the trials
    assert data["stats"]["n_trials"] in (0, 1, 2)
    if data["stats"]["n_trials"] == 2:
        assert data["metrics"]["zero-shot"]["DSR"] != data["metrics"]["zero-shot"]["PSR (SR > 0)"]
    else:  # an arm that never traded has no Sharpe: no DSR, and the page and JSON say why
        assert data["stats"]["dsr"]["note"] == "DSR needs ≥ 2 trials"
        assert "DSR needs ≥ 2 trials" in (out / "comparison.html").read_text()
    page = (out / "comparison.html").read_text()
    assert all(f'id="{s}"' in page for s in ("summary", "metrics", "equity", "calibration"))


def test_bt_compare_needs_from_or_arms():
    result = CliRunner().invoke(cli, ["compare"])
    assert result.exit_code != 0 and "--from DIR" in result.output
