"""Turnover-aware construction of ``llm_news_portfolio`` on hand-built panels: ``n_drop``
(TopkDropout), ``band`` (hysteresis), ``min_hold`` and ``max_turnover``, each rule checked by what
it must and must not do; the defaults-off case is today's full re-rank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmbt.errors import ConfigError
from llmbt.strategies.construction import cap_turnover
from llmbt.strategies.portfolio import LlmNewsPortfolio

NAMES = [f"S{j:02d}" for j in range(12)]
DAYS = pd.bdate_range("2016-01-04", periods=60, tz="UTC")


def scores(seed: int = 7) -> pd.DataFrame:
    """A fixed score pattern whose ranking changes a lot from bar to bar."""
    i = np.arange(len(DAYS))[:, None]
    j = np.arange(len(NAMES))[None, :]
    return pd.DataFrame(((seed * i + 5 * j * j + (i // 2) * j) % 23) / 23.0, index=DAYS, columns=NAMES)


def weights(score: pd.DataFrame, **params) -> pd.DataFrame:
    """Daily weights of the top 4; every rule off unless ``params`` sets it."""
    tradable = score.notna()
    full = {"top_k": 4, "rebalance": 1, "band": 0}
    return LlmNewsPortfolio.target_weights({"score": score}, tradable, full | params)


def held(w: pd.DataFrame) -> list[set[str]]:
    return [set(w.columns[row > 0]) for row in w.to_numpy()]


def ranks(score: pd.DataFrame, t: int) -> dict[str, int]:
    """1-based rank of each name at bar t (ties: name)."""
    order = sorted(score.columns, key=lambda s: (-score.iat[t, score.columns.get_loc(s)], s))
    return {s: r + 1 for r, s in enumerate(order)}


def test_the_defaults_rebalance_every_5_bars_with_a_band_of_10():
    p = LlmNewsPortfolio.Params()
    rules = (p.rebalance, p.band, p.n_drop, p.min_hold, p.max_turnover)
    assert rules == (5, 10, None, 0, None)


def test_every_rule_off_is_the_full_re_rank():
    s = scores()
    for t, names in enumerate(held(weights(s))):
        r = ranks(s, t)
        assert names == {n for n in NAMES if r[n] <= 4}


@pytest.mark.parametrize("n_drop", [1, 2, 3])
def test_n_drop_never_replaces_more_than_n_drop_names(n_drop):
    s = scores()
    books = held(weights(s, n_drop=n_drop))
    full = held(weights(s))
    assert all(len(b) == 4 for b in books)
    changes = [len(b - a) for a, b in zip(books, books[1:], strict=False)]
    assert max(changes) == n_drop and sum(changes) < sum(
        len(b - a) for a, b in zip(full, full[1:], strict=False))
    for t in range(1, len(books)):  # the names dropped are the worst-ranked held ones
        r, gone = ranks(s, t), books[t - 1] - books[t]
        stayed = books[t - 1] & books[t]
        assert all(r[g] > 4 for g in gone)
        if gone and len(gone) == n_drop:
            assert min(r[g] for g in gone) >= max((r[k] for k in stayed if r[k] > 4), default=0)
        entered = books[t] - books[t - 1]
        outside = [n for n in NAMES if n not in books[t]]
        assert all(r[e] <= min(r[o] for o in outside) or r[e] < r[min(outside, key=r.get)] + len(entered)
                   for e in entered)


def test_band_keeps_a_name_at_top_k_plus_band_and_drops_it_one_lower():
    base = pd.DataFrame(np.tile(np.linspace(1.0, 0.45, len(NAMES)), (3, 1)), index=DAYS[:3],
                        columns=NAMES)
    s = base.copy()  # S00..S03 held at bar 0; then S01 slides to rank 4 + 2 = 6
    s.iloc[1:, 1] = (base.iat[0, 5] + base.iat[0, 6]) / 2  # between S05 (rank 5) and S06
    assert ranks(s, 1)["S01"] == 6
    assert "S01" in held(weights(s, band=2))[1]
    assert "S01" not in held(weights(s, band=1))[1]
    s.iloc[1:, 1] = (base.iat[0, 6] + base.iat[0, 7]) / 2  # rank 7 = top_k + band + 1
    assert ranks(s, 1)["S01"] == 7 and "S01" not in held(weights(s, band=2))[1]


def test_min_hold_keeps_a_name_for_min_hold_bars():
    s = scores()
    books = held(weights(s, min_hold=5))
    entered_at: dict[str, int] = {}
    for t, book in enumerate(books):
        for name in book - (books[t - 1] if t else set()):
            entered_at[name] = t
        if t:
            for name in books[t - 1] - book:
                assert t - entered_at[name] >= 5, (name, t)


def test_max_turnover_caps_each_rebalance_and_trades_the_best_first():
    s = scores()
    w = weights(s, max_turnover=0.5).fillna(0.0)
    turnover = w.diff().abs().sum(axis=1).iloc[1:]
    assert turnover.max() <= 0.5 + 1e-12
    full = weights(s).fillna(0.0).diff().abs().sum(axis=1).iloc[1:]
    assert turnover.sum() < full.sum()
    old = np.array([0.25, 0.25, 0.0, 0.0, 0.25, 0.25])
    new = np.array([0.0, 0.25, 0.25, 0.25, 0.0, 0.25])
    priority = np.array([-5.0, -1, -0.5, -3, -6, -2])  # leaver 4 is the worst, entrant 2 the best
    assert list(cap_turnover(old, new, priority, 0.5)) == [0.25, 0.25, 0.25, 0.0, 0.0, 0.25]


@pytest.mark.parametrize("params, match", [
    ({"n_drop": 5}, "n_drop=5 must be at most top_k=4"), ({"band": -1}, "band"),
    ({"max_turnover": 0}, r"max_turnover=0 must be in \(0, 2\]"),
    ({"max_turnover": 2.5}, r"\(0, 2\]"), ({"min_hold": 1.5}, "min_hold"),
])
def test_bad_turnover_parameters_are_one_line(params, match):
    with pytest.raises(ConfigError, match=match):
        LlmNewsPortfolio.Params.from_mapping({"top_k": 4} | params)


def test_a_construction_that_holds_every_name_is_said_plainly(shared_news, monkeypatch, tmp_path):
    from click.testing import CliRunner
    from helpers import fake_adapter, stub_scoring

    import llmbt.cli.wf  # noqa: F401  (registers compare)
    from llmbt.cli import cli
    from llmbt.signals_cache import universe

    stub_scoring(monkeypatch, universe)
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    data = f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}"
    common = ["--strategy", "llm_news_portfolio", "--symbols", "AAPL,BA,GS,GM,JPM", "--start",
              "2015-03-02", "--end", "2015-06-30", "--data", data, "--news",
              str(shared_news / "reuters_headlines_2013_2016.csv.gz"), "--news-tz", "America/New_York"]
    run = CliRunner().invoke(cli, ["run", *common, "--no-report"])  # default top_k=5: every name
    assert run.exit_code == 0, run.output
    assert "construction: the scores cannot change the holdings: top_k=5 >= the 5 names" in run.output
    cmp = CliRunner().invoke(cli, ["compare", *common, "--arm", "name=base", "--arm",
                                   f"name=lora,adapter={fake_adapter(tmp_path / 'a')}",
                                   "--out", str(tmp_path / "cmp")])
    assert cmp.exit_code == 0 and "construction: the scores cannot change" in cmp.output, cmp.output
    two = CliRunner().invoke(cli, ["run", *common, "--param", "top_k=2", "--no-report"])
    assert two.exit_code == 0 and "construction:" not in two.output


def test_the_rebalance_schedule_is_anchored_at_the_first_traded_bar():
    """The same window traded after 7 or after 10 bars of warm-up rebalances on the same bars."""
    s = scores()
    t0 = s.index[10]
    anchored = [LlmNewsPortfolio.target_weights({"score": x}, x.notna(), {"top_k": 4, "rebalance": 5,
                                                "band": 0}, anchor=t0) for x in (s.iloc[3:], s)]
    days = [w.loc[t0:].notna().any(axis=1) for w in anchored]
    assert days[0].equals(days[1]) and days[0].iloc[0] and days[0].iloc[5] and not days[0].iloc[1]
    pd.testing.assert_frame_equal(anchored[0].loc[t0:], anchored[1].loc[t0:])
