"""Dated examples labelled by forward returns, without look-ahead: one per bar
(:func:`bar_examples`) or one per headline (:func:`headline_examples`).

A bar example's text uses prices up to its close only; a headline's label starts at the open of
the first bar that opens strictly after it was published. Forward returns start at the next
bar's open, and label thresholds are fitted only on examples whose whole forward window ends
inside the training window. Split them with :func:`llmbt.signals_cache.finetune.datasets.time_split`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError, DataError, unknown_name_error
from llmbt.signals_cache.finetune.datasets import Example
from llmbt.signals_cache.scoring.features import bar_features, valid_mask
from llmbt.signals_cache.scoring.prompts import format_features

#: Label methods of :func:`bar_examples`.
BAR_METHODS: tuple[str, ...] = ("quantile", "vol")
#: Trailing window (bars) of the return standard deviation used by the ``vol`` method.
VOL_WINDOW = 20
#: Share of the bar examples used to fit thresholds when ``train_end`` is not given.
DEFAULT_TRAIN_SHARE = 0.7


def bar_examples(
    prices: pd.DataFrame, *, symbol: str, horizon: int = 5,
    train_end: str | pd.Timestamp | None = None, method: str = "quantile",
    q: tuple[float, float] = (1 / 3, 2 / 3), k: float = 0.5,
) -> list[Example]:
    """One labelled example per valid bar, without look-ahead.

    The text of bar ``t`` is :func:`format_features` of :func:`bar_features` at ``t`` (prices up
    to ``t``'s close). Its forward return is ``close[t+horizon] / open[t+1] - 1``; bars without a
    full horizon are dropped. ``quantile`` thresholds are the ``q`` quantiles of the forward
    returns of bars whose forward window ends by ``train_end`` (default: the time of the bar at
    70 % of the examples; after a split, :func:`fit_on_train` refits them on the train block
    alone, as ``bt dataset build`` does); ``vol`` thresholds are ``±k`` × trailing 20-bar std
    of close returns × ``sqrt(horizon)``. Above the upper threshold is bullish, below the lower bearish.

    Raises:
        ConfigError: bad ``horizon``, ``method`` or ``q``.
        DataError: prices fail validation, or no bar's forward window ends by ``train_end``.
    """
    _check_bar_args(horizon, method, q)
    features = bar_features(prices)
    forward = prices["close"].shift(-horizon) / prices["open"].shift(-1) - 1.0
    keep = valid_mask(features) & forward.notna()
    if not keep.any():
        raise DataError(f"no bar of {symbol} has features and a full {horizon}-bar horizon.")
    pos = np.flatnonzero(keep.to_numpy())
    returns = forward.to_numpy()[pos]
    labels = _labels(prices, returns, pos + 1, pos + horizon, prices.index[pos],
                     (horizon, train_end, method, q, k))
    return [
        Example(format_features(features.loc[t]), str(label), symbol, t, float(r))
        for t, label, r in zip(prices.index[pos], labels, returns, strict=True)
    ]


def headline_examples(
    prices: pd.DataFrame, news: pd.DataFrame, *, horizon: int = 5,
    train_end: str | pd.Timestamp | None = None, method: str = "quantile",
    q: tuple[float, float] = (1 / 3, 2 / 3), k: float = 0.5,
) -> list[Example]:
    """One labelled example per headline (``news`` as :func:`feeds.load_news` returns it).

    A headline published at ``t`` enters at the open of the first bar opening strictly after
    ``t`` (bar ``p``, :func:`feeds.align_news_to_bars`); its forward return is
    ``close[p+horizon-1] / open[p] - 1``, the same ``horizon`` bars a bar example at ``p-1``
    holds. Headlines without a full window are dropped. Thresholds as in :func:`bar_examples`
    (quantiles fitted on headlines whose window ends by ``train_end``; ``vol`` uses the trailing
    volatility at bar ``p-1``). Each example's ``label_end`` is the close time of bar
    ``p+horizon-1`` (:func:`bar_closes`), which :func:`time_split` uses to purge labels that
    overlap a later split.

    Raises:
        ConfigError: bad ``horizon``, ``method`` or ``q``.
        DataError: no headline has a full forward window inside the prices.
    """
    from llmbt.feeds.news import align_news_to_bars

    _check_bar_args(horizon, method, q)
    entry = align_news_to_bars(pd.DatetimeIndex(news["timestamp"]), prices.index,
                               day=news.get("day"))
    exit_ = entry + horizon - 1
    ok = (entry >= 0) & (exit_ < len(prices))
    if not ok.any():
        raise DataError(f"no headline has a full {horizon}-bar window inside the prices "
                        f"({prices.index[0]} .. {prices.index[-1]}); check --news and --data.")
    entry, exit_, kept = entry[ok], exit_[ok], news[ok].reset_index(drop=True)
    forward = prices["close"].to_numpy()[exit_] / prices["open"].to_numpy()[entry] - 1.0
    ends = prices.index[exit_]
    labels = _labels(prices, forward, entry, exit_, ends.sort_values(),
                     (horizon, train_end, method, q, k))
    closes = bar_closes(prices.index, exit_)
    return [Example(row.headline, str(labels[i]), row.symbol, row.timestamp, float(forward[i]),
                    closes[i]) for i, row in enumerate(kept.itertuples())]


def bar_closes(index: pd.DatetimeIndex, positions: np.ndarray) -> pd.DatetimeIndex:
    """When the bars at ``positions`` of ``index`` end, on the clock headlines are aligned with
    (:func:`llmbt.feeds.news.align_news_to_bars`: a bar's time is its open): a daily bar (every
    bar at midnight UTC, the session date) ends at the next midnight UTC, any other bar one bar
    spacing (the median) after its open. A label's end is its exit bar's close, so a label is
    compared with a later headline's time (a date-only one: the end of its day in ``--news-tz``)
    on one basis."""
    starts = index[np.asarray(positions, dtype=np.int64)]
    utc = index.tz_convert("UTC") if index.tz is not None else index
    daily = len(index) < 2 or bool((utc == utc.normalize()).all())
    step = pd.Timedelta(days=1) if daily else pd.Series(index).diff().median()
    return starts + step


def _labels(prices: pd.DataFrame, forward: np.ndarray, entry: np.ndarray, exit_: np.ndarray,
            anchor: pd.DatetimeIndex,
            rule: tuple[int, str | pd.Timestamp | None, str, tuple[float, float], float],
            ) -> np.ndarray:
    """bullish / bearish / neutral of each forward return (held from bar ``entry`` to ``exit_``).

    ``rule`` is ``(horizon, train_end, method, q, k)``. ``vol``: ``±k`` × the trailing
    close-return volatility at bar ``entry - 1`` × ``sqrt(horizon)``. ``quantile``: the ``q``
    quantiles of the returns whose window ends by ``train_end`` (default: the time at 70 % of
    ``anchor``, sorted times of the examples)."""
    horizon, train_end, method, q, k = rule
    if method == "vol":
        sigma = prices["close"].pct_change().rolling(VOL_WINDOW).std().to_numpy()
        band = sigma[np.maximum(entry - 1, 0)] * math.sqrt(horizon)
        lower, upper = -k * band, k * band
    else:
        end = _train_end(anchor, train_end)
        fit = forward[np.asarray(prices.index[exit_] <= end)]
        if fit.size == 0:
            raise DataError(f"no example's {horizon}-bar forward window ends by train_end {end}; "
                            "move it later.")
        lower, upper = float(np.quantile(fit, q[0])), float(np.quantile(fit, q[1]))
    return bucket_labels(forward, lower, upper)


def bucket_labels(forward: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """``bullish`` above ``upper``, ``bearish`` below ``lower``, else ``neutral``, per forward return."""
    return np.where(forward > upper, "bullish", np.where(forward < lower, "bearish", "neutral"))


def fit_on_train(splits: dict[str, list[Example]],
                 q: tuple[float, float] = (1 / 3, 2 / 3)) -> dict[str, list[Example]]:
    """Every split relabelled by the ``q`` quantiles of the **train** split's forward returns.

    :func:`bar_examples` and :func:`headline_examples` fit quantile thresholds before the split
    is known; after :func:`~llmbt.signals_cache.finetune.datasets.time_split` this refits them on the train
    block alone (already embargoed and purged), so validation and test returns shape no label.

    Raises:
        DataError: the train split is empty or has an example without a forward return.
    """
    returns = [e.forward_return for e in splits.get("train", [])]
    if not returns or any(r is None for r in returns):
        raise DataError("quantile labels need a train split of examples with forward returns; "
                        "use more data or a smaller --embargo.")
    lower, upper = (float(x) for x in np.quantile(np.asarray(returns), q))

    def relabel(part: list[Example]) -> list[Example]:
        labels = bucket_labels(np.array([e.forward_return for e in part], dtype=float), lower, upper)
        return [dataclasses.replace(e, label=str(lab)) for e, lab in zip(part, labels, strict=True)]

    return {name: relabel(part) for name, part in splits.items()}


def _check_bar_args(horizon: int, method: str, q: tuple[float, float]) -> None:
    if int(horizon) != horizon or horizon < 1:
        raise ConfigError(f"horizon must be a whole number of bars >= 1, got {horizon!r}.")
    if method not in BAR_METHODS:
        raise unknown_name_error("label method", method, BAR_METHODS, cls=ConfigError)
    if not (len(q) == 2 and 0 < q[0] < q[1] < 1):
        raise ConfigError(f"q must be two quantiles with 0 < lower < upper < 1, got {q!r}.")


def _train_end(times: pd.DatetimeIndex, train_end: str | pd.Timestamp | None) -> pd.Timestamp:
    if train_end is None:
        return times[max(int(len(times) * DEFAULT_TRAIN_SHARE) - 1, 0)]
    stamp = pd.Timestamp(train_end)
    if times.tz is not None and stamp.tz is None:
        stamp = stamp.tz_localize(times.tz)
    return stamp
