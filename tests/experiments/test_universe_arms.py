"""Arms across a universe: `bt compare --arm` of llm_news_portfolio (stubbed model, shared S&P 500 data),
the N-arm cross-section statistics (SPA per arm and over all arms, DSR with N = the arms), the adapter
rule of arms, and the universe comparison page and tearsheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import fake_adapter, stub_scoring

import llmbt.cli.wf  # noqa: F401  (registers compare)
from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments.arms import Arm, arm_config, run_arms
from llmbt.experiments.universe_arms import run_universe_arms
from llmbt.reports.crosssection import crosssection_table, spa_test
from llmbt.reports.universe_page import write_universe_pages
from llmbt.reports.universe_wf import per_arm_table, universe_wf_stats
from llmbt.signals_cache import universe

SYMBOLS = "AAPL,BA,GS,GM,JPM"
DAYS = pd.bdate_range("2015-01-01", periods=400, tz="UTC")


# --- the adapter of an arm ------------------------------------------------------------------------------


def test_an_arm_without_adapter_is_the_plain_model():
    run = RunConfig(strategy="llm_news_portfolio", adapter="adapters/x", prompt="headlines-v2")
    assert arm_config(run, Arm("base")).adapter is None  # not the run's adapter
    assert arm_config(run, Arm("lora", adapter="a/b")).adapter == "a/b"
    assert arm_config(run, Arm("m", model="other")).model == "other"
    assert arm_config(run, Arm("m")).prompt == "headlines-v2"  # the run's own prompt


@pytest.mark.parametrize("strategy", ["llm_sentiment", "llm_news_portfolio"])
def test_a_run_level_adapter_with_arms_is_refused_before_any_data_is_read(strategy):
    run = RunConfig(strategy=strategy, data="csv:/no/such/file.csv", adapter="adapters/x",
                    start="2015-03-02")
    call = run_universe_arms if strategy == "llm_news_portfolio" else run_arms
    with pytest.raises(ConfigError, match="--arm name=lora,adapter=adapters/x"):
        call(run, [Arm("base"), Arm("lora", adapter="adapters/y")])


def test_a_universe_arm_with_a_per_symbol_prompt_is_refused_before_any_data_is_read():
    run = RunConfig(strategy="llm_news_portfolio", data="csv:/no/such/file.csv", start="2015-03-02")
    with pytest.raises(ConfigError, match="puts the symbol in the prompt"):
        run_universe_arms(run, [Arm("base"), Arm("v1", prompt="headlines-v1")])


# --- N-arm statistics -----------------------------------------------------------------------------------


def three_arms(edge: float = 0.002, seed: int = 5) -> tuple[dict[str, pd.Series], pd.DataFrame]:
    """Returns of base, prompt and lora: the benchmark plus a mean excess of exactly 0, 0 and
    ``edge`` a day (demeaned noise), and daily ICs: lora's centred on ``40 * edge``, the others on 0."""
    rng = np.random.default_rng(seed)
    bench = pd.Series(rng.normal(0.0003, 0.01, len(DAYS)), DAYS)
    means = {"base": 0.0, "prompt": 0.0, "lora": edge}
    noise = {k: rng.normal(0, 0.004, len(DAYS)) for k in means}
    returns = {k: bench + m + noise[k] - noise[k].mean() for k, m in means.items()}
    daily = pd.DataFrame({k: np.clip((40 * m) + rng.normal(0, 0.1, len(DAYS)), -1, 1)
                          for k, m in means.items()}, index=DAYS)
    return returns | {"equal_weight": bench}, daily


def test_three_arms_one_clearly_better_spa_per_arm_and_dsr_with_three_trials():
    returns, daily = three_arms()
    stats, skipped = universe_wf_stats(returns, daily, 1, periods=252, arms=["base", "prompt", "lora"])
    assert skipped == {}
    spa, alone, dsr = stats["spa"], stats["spa_arms"], stats["dsr"]
    assert spa["n_arms"] == 3 and spa["p_spa"] < 0.01 and spa["stepm"] == ["lora"]
    assert list(alone) == ["base", "prompt", "lora"]
    assert alone["lora"]["p_consistent"] < 0.01
    assert alone["base"]["p_consistent"] > 0.1 and alone["prompt"]["p_consistent"] > 0.1
    for arm, s in alone.items():  # each arm's p-values are spa_test of that arm alone
        one = spa_test(pd.DataFrame({arm: returns[arm]}), returns["equal_weight"])
        assert (s["p_lower"], s["p_consistent"], s["p_upper"]) == (one["p_lower"], one["p_spa"],
                                                                   one["p_reality_check"])
        assert s["p_lower"] <= s["p_consistent"] <= s["p_upper"]
    assert dsr["n_trials"] == 3 and dsr["best_arm"] == "lora" and set(dsr["dsrs"]) == set(alone)
    assert dsr["dsrs"]["lora"] == dsr["dsr"] > dsr["dsrs"]["base"]
    ic = {d["arms"]: d for d in stats["ic_difference"]}  # each arm against the first
    assert set(ic) == {("prompt", "base"), ("lora", "base")}
    assert ic[("lora", "base")]["significant"] and not ic[("prompt", "base")]["significant"]
    sharpe = {d["arms"]: d for d in stats["sharpe_difference"]}
    assert sharpe[("lora", "base")]["low"] > 0
    text = crosssection_table(stats)
    assert "IC difference prompt - base" in text and "IC difference lora - base" in text
    assert "Each arm alone vs the benchmark" in text and "DSR with 3 trials" in text
    table = per_arm_table(stats)
    assert table.loc["lora", "p_spa"] == alone["lora"]["p_consistent"]
    assert table.loc["lora", "stepm_superior"] and not table.loc["base", "stepm_superior"]
    assert (table["n_trials"] == 3).all()


def test_three_arms_without_an_edge_find_none():
    returns, daily = three_arms(edge=0.0)
    stats, _ = universe_wf_stats(returns, daily, 1, periods=252, arms=["base", "prompt", "lora"])
    assert stats["spa"]["p_spa"] > 0.1 and stats["spa"]["stepm"] == []
    assert all(s["p_consistent"] > 0.05 for s in stats["spa_arms"].values())


# --- pages ----------------------------------------------------------------------------------------------


def test_the_universe_pages_are_written_with_the_per_fold_numbers(tmp_path):
    returns, daily = three_arms()
    arms = ["base", "prompt", "lora"]
    stats, skipped = universe_wf_stats(returns, daily, 1, periods=252, arms=arms)
    folds = pd.DataFrame([{"fold": k, "model": a, "test_start": DAYS[200 * k],
                           "test_end": DAYS[200 * k + 199], "sharpe": 0.1234 + k + i,
                           "total_return": 0.01 * (i - k), "mean_ic": 0.04321 * i, "ic_t": 1.5 + i,
                           "ic_days": 200} for k in (0, 1) for i, a in enumerate(arms)])
    page, sheet = write_universe_pages(tmp_path / "out", returns=returns, folds=folds, stats=stats,
                                       skipped={"x": "too few days"}, arms=arms, title="three arms",
                                       notes={"run id": "abc"})
    assert page == tmp_path / "out" / "comparison.html" and sheet == tmp_path / "out" / "tearsheet.html"
    text = page.read_text()
    assert all(f'id="{s}"' in text for s in ("summary", "arms", "tests", "equity", "folds"))
    for row in folds.itertuples():
        assert f"<td>{row.sharpe:.3f}</td>" in text and f"<td>{row.mean_ic:.4f}</td>" in text
    assert f"<td>{DAYS[200]:%Y-%m-%d}</td>" in text  # fold 1's first test day
    assert f"{stats['spa']['p_consistent']:.3f}" in text and "DSR (3 trials)" in text
    assert "lora - base" in text and "x: not computed (too few days)" in text
    assert "data:image/png;base64," in text  # the cumulative returns
    assert "lora (best of 3 arms by Sharpe) vs equal_weight" in sheet.read_text()


# --- bt compare --arm of a universe, end to end ----------------------------------------------------------


@pytest.fixture
def by_adapter(monkeypatch) -> list[str]:
    """Stubbed scoring in which an adapter changes the scores (its folder name salts each prompt)."""
    sent = stub_scoring(monkeypatch, universe)
    plain = universe.score_rendered

    def scored(prompts, req, version):
        salt = Path(req.spec.adapter).name if req.spec.adapter else ""
        return plain([salt + p for p in prompts], req, version)

    monkeypatch.setattr(universe, "score_rendered", scored)
    return sent


def test_bt_compare_arms_of_a_universe(shared_news, by_adapter, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    a, b = fake_adapter(tmp_path / "lora-a"), fake_adapter(tmp_path / "lora-b")
    out = tmp_path / "cmp"
    args = ["compare", "--strategy", "llm_news_portfolio", "--symbols", SYMBOLS, "--start", "2015-03-02",
            "--end", "2015-06-30", "--data", f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
            "--news", str(shared_news / "reuters_headlines_2013_2016.csv.gz"), "--news-tz",
            "America/New_York", "--param", "top_k=2", "--arm", "name=base", "--arm",
            f"name=lora,adapter={a}", "--arm", f"name=lora2,adapter={b}", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "IC per arm" in res.output and "IC difference lora - base" in res.output
    assert "IC difference lora2 - base" in res.output and "Each arm alone vs the benchmark" in res.output
    assert "IC decay lora: mean IC peaks at h=" in res.output
    decay = pd.read_csv(out / "decay.csv")
    assert set(decay["arm"]) == {"base", "lora", "lora2"} and list(decay["horizon"][:3]) == [1, 2, 3]
    assert f"comparison page: {out / 'comparison.html'}; tearsheet: {out / 'tearsheet.html'}" in res.output
    for name in ("returns.csv", "scores.csv", "folds.csv", "ic.csv", "folds_ic.csv", "crosssection.json",
                 "spa_dsr.csv", "comparison.html", "tearsheet.html"):
        assert (out / name).is_file(), name
    returns = pd.read_csv(out / "returns.csv", index_col="time", parse_dates=["time"])
    assert list(returns.columns) == ["base", "lora", "lora2", "equal_weight"]
    assert returns.index[0] == pd.Timestamp("2015-03-02", tz="UTC")
    assert not returns["base"].equals(returns["lora"])  # the adapter changed the scores
    stats = json.loads((out / "crosssection.json").read_text())["stats"]
    assert stats["dsr"]["n_trials"] == 3 and list(stats["spa_arms"]) == ["base", "lora", "lora2"]
    assert stats["spa"]["n_arms"] == 3
    per_arm = pd.read_csv(out / "spa_dsr.csv", index_col="arm")
    assert list(per_arm.index) == ["base", "lora", "lora2"] and per_arm["p_spa"].between(0, 1).all()
    folds = pd.read_csv(out / "folds_ic.csv")
    assert list(folds["model"]) == ["base", "lora", "lora2"] and folds["mean_ic"].notna().all()
    page = (out / "comparison.html").read_text()
    assert all(f"<td>{s:.3f}</td>" in page for s in folds["sharpe"])


def crypto_universe(folder: Path) -> tuple[Path, Path]:
    """A synthetic daily universe trading 7 days a week (as ccxt's), and a headline a day each."""
    rng = np.random.default_rng(7)
    days = pd.date_range("2021-01-01", periods=240, freq="D", tz="UTC")
    rows, news = [], []
    for k, symbol in enumerate(["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]):
        close = 100 * np.exp(np.cumsum(rng.normal(0.0005 * k, 0.03, len(days))))
        open_ = close * np.exp(rng.normal(0, 0.005, len(days)))
        rows.append(pd.DataFrame({"timestamp": days, "symbol": symbol, "open": open_,
                                  "high": np.maximum(open_, close) * 1.01,
                                  "low": np.minimum(open_, close) * 0.99, "close": close,
                                  "volume": 1000.0}))
        news += [{"timestamp": f"{d:%Y-%m-%d}T12:00:00Z", "symbol": symbol,
                  "headline": f"{symbol} update {i % 7}"} for i, d in enumerate(days)]
    prices, headlines = folder / "prices.csv", folder / "news.csv"
    pd.concat(rows).to_csv(prices, index=False)
    pd.DataFrame(news).to_csv(headlines, index=False)
    return prices, headlines


def test_a_seven_day_universe_compare_annualises_every_sharpe_with_365_days(by_adapter, tmp_path,
                                                                            monkeypatch):
    from llmbt.engine.metrics import sharpe_ratio

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    prices, news = crypto_universe(tmp_path)
    out = tmp_path / "cmp"
    args = ["compare", "--strategy", "llm_news_portfolio", "--start", "2021-04-01", "--data",
            f"csv:{prices}", "--news", str(news), "--param", "top_k=2", "--arm", "name=base",
            "--arm", f"name=lora,adapter={fake_adapter(tmp_path / 'lora')}", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    returns = pd.read_csv(out / "returns.csv", index_col="time", parse_dates=["time"])
    assert (returns.index.day_of_week >= 5).sum() > 40  # weekends are bars
    saved = json.loads((out / "crosssection.json").read_text())
    stats, folds = saved["stats"], pd.read_csv(out / "folds.csv", index_col="model")
    for arm in ("base", "lora"):  # the engine's per-fold Sharpe, the DSR's and the page's agree
        sharpe = sharpe_ratio(returns[arm], 365.25)
        assert folds.loc[arm, "sharpe"] == pytest.approx(sharpe, rel=1e-9)
        assert stats["dsr"]["sharpes"][arm] == pytest.approx(sharpe, rel=1e-9)
        assert sharpe != pytest.approx(sharpe_ratio(returns[arm], 252), rel=1e-3)
    assert saved["periods_per_year"] == 365.25
    diff = stats["sharpe_difference"][0]
    assert diff["diff"] == pytest.approx(sharpe_ratio(returns["lora"], 365.25)
                                         - sharpe_ratio(returns["base"], 365.25), rel=1e-9)
    page = (out / "comparison.html").read_text()
    assert f"<td>{sharpe_ratio(returns['lora'], 365.25):.3f}</td><td>" in page
    assert "<td>periods per year</td><td>365.25</td>" in page
