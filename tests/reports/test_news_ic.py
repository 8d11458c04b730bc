"""Daily IC of arms on dated headlines (``bt evaluate --news``): hand-built ICs, the alignment (a
perfect-foresight score gives IC 1 only on the return after its headline's bar), and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.cli.flows import evaluate_news
from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments.arms import Arm
from llmbt.reports.news_ic import excess_next_day, news_daily_ic, news_ic_stats
from llmbt.reports.signal import daily_ic, forward_returns
from llmbt.signals_cache.text_scorers import registry

DAYS = pd.bdate_range("2015-01-05", periods=60, tz="UTC", name="timestamp")
#: The 30 symbols of the README's shared-news runs (among those with the most Reuters headlines).
TOP30 = ("AAPL,BA,GS,GM,JPM,XOM,AMZN,GOOG,GOOGL,C,LMT,GE,F,WFC,WMT,MSFT,MS,PFE,FB,MON,BLK,MCD,BAC,T,"
         "CVX,VZ,AGN,CBS,DAL,DIS")
SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG"]


def _opens(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.02, (len(DAYS), len(SYMBOLS)))
    return pd.DataFrame(100 * np.exp(np.cumsum(steps, axis=0)), index=DAYS, columns=SYMBOLS)


# --- the IC on hand-built data ----------------------------------------------------------------------


def test_one_swapped_pair_of_five_names_gives_ic_0_9():
    days = DAYS[:3]
    opens = pd.DataFrame({s: [100.0, 100.0, 100.0 * (1 + r)] for s, r in
                          zip("ABCDE", (0.01, 0.02, 0.03, 0.04, 0.05), strict=True)}, index=days)
    # the score known at day 0's close is paired with open[2] / open[1] - 1: 1 % .. 5 %
    scores = pd.DataFrame(np.nan, index=days, columns=list("ABCDE"))
    scores.iloc[0] = [1.0, 2.0, 4.0, 3.0, 5.0]  # C and D swapped: 1 - 6 * 2 / (5 * 24) = 0.9
    daily = news_daily_ic({"x": scores}, opens)
    assert daily["x"].iloc[0] == pytest.approx(0.9) and daily["x"].iloc[1:].isna().all()
    stats = news_ic_stats(daily)["x"]
    assert stats["mean_ic"] == pytest.approx(0.9) and stats["days"] == 1
    excess = excess_next_day(opens).iloc[0]
    assert excess.to_numpy() == pytest.approx([-0.02, -0.01, 0.0, 0.01, 0.02])


def test_the_excess_return_leaves_the_rank_ic_of_raw_returns():
    opens = _opens()
    scores = pd.DataFrame(np.random.default_rng(1).normal(size=opens.shape), opens.index, opens.columns)
    raw = daily_ic(scores, forward_returns(opens, (1,))[1])
    assert news_daily_ic({"x": scores}, opens)["x"].to_numpy() == pytest.approx(raw.to_numpy(),
                                                                                nan_ok=True)


def test_an_arm_without_any_ic_day_has_zero_days():
    opens = _opens()
    stats = news_ic_stats(news_daily_ic({"none": opens * np.nan}, opens))["none"]
    assert stats["days"] == 0 and np.isnan(stats["mean_ic"])


# --- the alignment, end to end through universe scoring ----------------------------------------------


class Foresight:
    """A planted scorer: the headline ``"SYM i"`` is dated ``DAYS[i]`` (date-only), so its bar is
    ``p = i + 1`` (the next session), its score is known at ``p``'s close and first traded at the
    open of ``p + 1``; it scores the open-to-open return from bar ``p + 1 + shift`` to
    ``p + 2 + shift`` (shift -1: the headline bar's own return, which it cannot trade)."""

    name = "foresight"

    def __init__(self, opens: pd.DataFrame, shift: int) -> None:
        self.opens, self.shift = opens, shift

    def fingerprint(self) -> str:
        return f"foresight-{self.shift}"

    def score(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = []
        for text in texts:
            symbol, i = text.split()
            start = int(i) + 2 + self.shift
            s = float(np.clip(10 * (self.opens[symbol].iloc[start + 1] / self.opens[symbol].iloc[start] - 1),
                              -0.99, 0.99))
            out.append([max(s, 0.0), max(-s, 0.0), 1 - abs(s)])  # LABELS: bullish, bearish, neutral
        return np.array(out)


def _universe_files(tmp_path, opens: pd.DataFrame) -> RunConfig:
    long = opens.stack().rename("open").reset_index().rename(columns={"level_1": "symbol"})
    long["timestamp"] = long["timestamp"].dt.strftime("%Y-%m-%d")
    long = long.assign(high=long["open"] * 1.01, low=long["open"] * 0.99, close=long["open"], volume=1e6)
    long.to_csv(tmp_path / "prices.csv", index=False)
    rows = [{"timestamp": f"{DAYS[i]:%Y-%m-%d}", "symbol": s, "headline": f"{s} {i}", "source": "t"}
            for i in range(len(DAYS) - 4) for s in SYMBOLS]  # date-only: "some time that day"
    pd.DataFrame(rows).to_csv(tmp_path / "news.csv", index=False)
    return RunConfig(strategy="llm_news_portfolio", data=f"csv:{tmp_path / 'prices.csv'}",
                     news=str(tmp_path / "news.csv"), news_tz="America/New_York",
                     start=f"{DAYS[0]:%Y-%m-%d}", end=f"{DAYS[-1]:%Y-%m-%d}",
                     cache_dir=str(tmp_path / "cache"))


@pytest.fixture
def foresight(monkeypatch):
    opens = _opens()
    monkeypatch.setitem(registry._KINDS, "foresight",
                        lambda model=None, path=None: Foresight(opens, int(Path(path).name[5:])))
    return opens


def shift(tmp_path: Path, k: int) -> str:
    """The planted scorer's artefact folder ``shiftK`` (shaped like an adapter, as arms check)."""
    folder = tmp_path / f"shift{k}"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return str(folder)


def test_a_perfect_foresight_score_has_ic_1_only_on_the_return_after_its_bar(tmp_path, foresight):
    config = _universe_files(tmp_path, foresight)
    arms = [Arm(f"shift{k}", kind="foresight", adapter=shift(tmp_path, k)) for k in (0, -1, 1)]
    res = evaluate_news(config, arms)
    ic, daily = res["ic"], res["daily"]
    assert ic["shift0"]["days"] == len(DAYS) - 4  # the first bar (no headline yet) and the last two
    assert ic["shift0"]["mean_ic"] == pytest.approx(1.0)  # every day
    assert daily["shift0"].dropna().to_numpy() == pytest.approx(1.0)
    for late in ("shift-1", "shift1"):  # the headline bar's own return, or the day after the right one
        assert abs(ic[late]["mean_ic"]) < 0.3 and (daily[late].dropna() < 0.99).all()
    assert "text scorer foresight" in res["info"]["shift0"]["signals"]


def test_evaluate_news_refuses_repeated_arm_names(tmp_path):
    with pytest.raises(ConfigError, match="distinct names"):
        evaluate_news(RunConfig(news="x.csv"), [Arm("a", kind="lexicon"), Arm("a")])


def test_evaluate_news_refuses_a_symbol_prompt_before_reading_any_data(tmp_path):
    # the universe file does not exist: the prompt must be refused before anything is read
    cfg = RunConfig(news=str(tmp_path / "none.csv"), data=f"csv:{tmp_path / 'none.csv'}")
    with pytest.raises(ConfigError, match=r"--arm lora: --prompt 'headlines-v1' puts the symbol"):
        evaluate_news(cfg, [Arm("base"), Arm("lora", prompt="headlines-v1")])


# --- the command -------------------------------------------------------------------------------------


def test_bt_evaluate_news_prints_and_writes_each_arms_ic(tmp_path, foresight, monkeypatch):
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    config = _universe_files(tmp_path, foresight)
    out = tmp_path / "eval.json"
    args = ["evaluate", "--no-base", "--arm", f"name=right,kind=foresight,adapter={shift(tmp_path, 0)}",
            "--arm", f"name=late,kind=foresight,adapter={shift(tmp_path, -1)}", "--news", config.news,
            "--news-tz", config.news_tz, "--universe", config.data, "--start", config.start,
            "--end", config.end, "--json", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "news: mean_ic" in res.output and "1.0000" in res.output and "accuracy" not in res.output
    data = json.loads(out.read_text())
    assert data["right"]["news_ic"]["mean_ic"] == pytest.approx(1.0)
    assert data["right"]["news_ic"]["days"] == len(DAYS) - 4 and abs(data["late"]["news_ic"]["mean_ic"]) < 0.3


def test_bt_evaluate_needs_data_or_news_and_news_needs_a_universe():
    res = CliRunner().invoke(cli, ["evaluate", "--arm", "lexicon"])
    assert res.exit_code != 0 and "--data FILE" in res.output and "--news FILE" in res.output
    res = CliRunner().invoke(cli, ["evaluate", "--arm", "lexicon", "--news", "x.csv"])
    assert res.exit_code != 0 and "--news needs --universe URI" in res.output


def test_lexicon_daily_ic_on_the_shared_headlines(shared_news, tmp_path, monkeypatch):
    """Golden: the lexicon arm on the README's 30 symbols' Reuters headlines, 2015 H1."""
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    config = RunConfig(strategy="llm_news_portfolio", start="2015-01-01", end="2015-06-30",
                       data=f"csv:{shared_news / 'sp500_prices_2013_2016.csv.gz'}",
                       news=str(shared_news / "reuters_headlines_2013_2016.csv.gz"),
                       news_tz="America/New_York", symbols=TOP30)
    ic = evaluate_news(config, [Arm("lexicon", kind="lexicon")])["ic"]["lexicon"]
    assert ic["days"] == 105  # 2015-01-02 has headlines of fewer than 5 names (2013-14's no longer count)
    assert (ic["mean_ic"], ic["t_stat_nonoverlap"]) == pytest.approx((0.03713, 1.2759), abs=5e-5)


def test_bt_evaluate_engine_reaches_the_model_rows_on_sentences_and_on_news(tmp_path, monkeypatch):
    from llmbt.cli import flows
    from llmbt.signals_cache.finetune import evaluate as fe

    seen = {}

    def rows(examples, arm, **_):  # the sentence rows: what each would be scored with
        seen.setdefault("spec", []).append(getattr(arm, "spec", None))
        return {"accuracy": 1.0, "n": len(examples)}

    def news(config, arms, **_):
        seen["config"] = config
        return {"ic": {a.name: {"mean_ic": 0.0} for a in arms}, "info": {}}

    monkeypatch.setattr(fe, "evaluate_arm", rows)
    monkeypatch.setattr(flows, "evaluate_news", news)
    data = tmp_path / "t.csv"
    data.write_text("label,text\npositive,Profit soars\n")
    args = ["evaluate", "--data", str(data), "--arm", "lexicon", "--news", "n.csv", "--universe",
            "csv:p.csv", "--precision", "bf16"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert seen["spec"][0].precision == "bf16" and seen["spec"][1] is None  # base; lexicon
    assert seen["config"].precision == "bf16"
    res = CliRunner().invoke(cli, [*args[:-1], "fp16"])
    assert res.exit_code != 0 and "--precision 'fp16' is not valid" in res.output
    assert "Choose from auto, float32, bf16" in res.output


def test_headlines_from_before_the_period_are_not_scored_or_piled_onto_its_first_bar(
        tmp_path, foresight, monkeypatch):
    scored = []
    real = registry._KINDS["foresight"]

    def recording(model=None, path=None):
        scorer = real(model, path)
        score = scorer.score
        scorer.score = lambda texts, batch_size: scored.extend(texts) or score(texts, batch_size)
        return scorer

    monkeypatch.setitem(registry._KINDS, "foresight", recording)
    config = _universe_files(tmp_path, foresight).replace(start=f"{DAYS[30]:%Y-%m-%d}")
    res = evaluate_news(config, [Arm("shift0", kind="foresight", adapter=shift(tmp_path, 0))])
    # "SYM i" is dated DAYS[i] and belongs to bar i + 1: the period's headlines are i >= 29
    assert sorted({int(t.split()[1]) for t in scored}) == list(range(29, len(DAYS) - 4))
    assert res["ic"]["shift0"]["mean_ic"] == pytest.approx(1.0)  # its first day too
    assert res["ic"]["shift0"]["days"] == len(DAYS) - 4 - 29
