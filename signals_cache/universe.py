"""Headline sentiment for a universe: every symbol's headlines scored in one cached pass.

Data flow: per-symbol bars + one headline table → each headline aligned to the first bar of *its*
symbol that may trade on it (:func:`llmbt.feeds.align_news_to_bars`) → only the headlines the run's
window and warm-up need → distinct headline texts rendered without the symbol (template
``headlines-v2``) and scored once, batched and de-duplicated, through the signal cache → per-symbol
decayed ``score`` / ``confidence`` columns (:func:`llmbt.signals_cache.signals.per_bar`) → panels
(calendar × symbols) that the portfolio strategy turns into target weights before the loop.

A headline tagged to several symbols (a market-wide story) is one prompt, scored once and counted
for each of its symbols. With ``--anonymize`` (``req.masker``) each (headline, symbol) row is
masked for its symbol first (:mod:`llmbt.signals_cache.anonymize`: its own company becomes
``Company A``), so such a story may give several prompts; identical masked texts are still
scored once.

A text-scorer arm (``req.arm``: ``lexicon``…, :mod:`llmbt.signals_cache.text_scorers`) scores the same
distinct cleaned headlines, without a prompt, under the cache version ``headlines-text``: the
entries a single-symbol run of that scorer writes for the same headline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmbt.errors import ConfigError
from llmbt.feeds import align_news_to_bars
from llmbt.signals_cache.model.loading import load_chat_template
from llmbt.signals_cache.scoring.pipeline import ScoreResult
from llmbt.signals_cache.scoring.prompts import PromptTemplate, clean_headline, render, template_for
from llmbt.signals_cache.signals import (
    SignalRequest,
    first_headline_bar,
    per_bar,
    realised_vol,
    score_info,
    score_rendered,
    text_version,
)
from llmbt.signals_cache.text_scorers.registry import LM_KIND

#: The template a universe uses unless the run names another (the headline without the symbol).
UNIVERSE_TEMPLATE = "headlines-v2"
PANELS = ("score", "confidence", "vol")


@dataclass(frozen=True)
class NewsItems:
    """The headlines a universe run scores: one row per (headline, symbol), aligned to bars.

    Attributes:
        rows: columns ``symbol``, ``headline`` (cleaned), ``position`` (bar of its symbol),
            ``timestamp`` (the headline's).
        texts: distinct headline texts, in first-seen order; ``code`` maps each row to one.
    """

    rows: pd.DataFrame
    texts: list[str]
    code: np.ndarray


def universe_signals(prices: Mapping[str, pd.DataFrame], news: pd.DataFrame,
                     req: SignalRequest) -> tuple[dict[str, pd.DataFrame], dict]:
    """Score the universe's headlines once and return ``score``/``confidence``/``vol`` panels.

    Args:
        prices: symbol → normalised bars (the run's window plus its warm-up history).
        news: headlines of any symbols (``load_news`` columns); other symbols' rows are ignored.
        req: model, cache, batch size, decay ``half_life``, ``score_from`` and ``warmup`` (bars
            before ``score_from`` that are scored), and the prompt version (default
            :data:`UNIVERSE_TEMPLATE`); ``req.arm`` other than ``lm`` scores the cleaned headline
            texts with that text scorer instead (no prompt), cached under its fingerprint.

    Returns:
        Panels (calendar × symbols; NaN where a symbol has no bar or no signal yet) and the run
        facts of the scoring (rows, distinct headlines, model calls, cache hits…).
    """
    template = universe_template(req.prompt) if req.arm == LM_KIND else None
    items = news_items(prices, news, req)
    if req.schedule is not None and template is not None:
        return _scheduled_panels(prices, items, template, req)
    prompts, version = _inputs(items.texts, template, req)
    result, scorer = score_rendered(prompts, req, version)
    panels = _panels(prices, items, result, req.half_life)
    info = score_info(result, scorer, req, version, len(prompts))
    what = f"template {version}" if template else f"text scorer {req.arm} ({version})"
    info["signals"] = (f"{len(items.rows)} (headline, symbol) rows over {len(prices)} symbols, "
                       f"{len(prompts)} distinct headlines, {what}")
    return panels, info


def _scheduled_panels(prices: Mapping[str, pd.DataFrame], items: NewsItems,
                      template: PromptTemplate, req: SignalRequest) -> tuple[dict, dict]:
    """:func:`universe_signals` through ``req.schedule``: each (headline, symbol) row scored by
    the model of its headline's time (a story repeated later may meet a later model)."""
    from llmbt.signals_cache.scheduled import scheduled_info, score_scheduled

    def texts_of(spec, rows: np.ndarray) -> list[str]:
        tokenizer = load_chat_template(spec)
        codes, inverse = np.unique(items.code[rows], return_inverse=True)
        rendered = [render(template, tokenizer, headline=items.texts[c]) for c in codes]
        return [rendered[i] for i in inverse]

    sched = score_scheduled(items.rows["timestamp"], texts_of, req, template.version, "headline",
                            score=score_rendered)
    rows = items.rows[sched.keep].reset_index(drop=True)
    kept = NewsItems(rows=rows, texts=[], code=np.arange(len(rows)))
    panels = _panels(prices, kept, sched.kept(), req.half_life)
    info = scheduled_info(sched, req, template.version, len(items.rows))
    info["signals"] = (f"{len(items.rows)} (headline, symbol) rows over {len(prices)} symbols "
                       f"({len(rows)} scored), {len(items.texts)} distinct headlines, template "
                       f"{template.version}, {len(info['schedule'])} model(s) of schedule "
                       f"{req.schedule.path}")
    return panels, info


def _inputs(texts: list[str], template: PromptTemplate | None,
            req: SignalRequest) -> tuple[list[str], str]:
    """What is scored and its cache version: the rendered prompts of ``template`` (the LM), or a
    text scorer's raw headlines (``req.arm``; template None), as single-symbol runs score them."""
    if template is None:
        return texts, text_version("headlines")
    tokenizer = load_chat_template(req.spec)
    return [render(template, tokenizer, headline=text) for text in texts], template.version


def universe_template(prompt: str | None) -> PromptTemplate:
    """The headline template a universe run scores with: ``prompt`` or :data:`UNIVERSE_TEMPLATE`.

    Raises:
        ConfigError: not a headline template, or one that puts the symbol in the prompt.
    """
    template = template_for("headlines", prompt or UNIVERSE_TEMPLATE)
    if "symbol" in template.fields:
        raise ConfigError(f"--prompt {template.version!r} puts the symbol in the prompt, so a "
                          f"headline of many symbols would be scored once per symbol; use "
                          f"{UNIVERSE_TEMPLATE} (or a template without {{symbol}})")
    return template


def news_items(prices: Mapping[str, pd.DataFrame], news: pd.DataFrame,
               req: SignalRequest) -> NewsItems:
    """The headlines the run needs: each aligned to its symbol's bars, from the warm-up on."""
    if news is None or news.empty:
        raise ConfigError("a news portfolio needs --news FILE (CSV/JSONL/Parquet with timestamp, "
                          "symbol, headline) or a fetched source such as finnhub:")
    upper = news["symbol"].astype(str).str.strip().str.upper()
    parts = [_symbol_rows(bars, news[(upper == symbol).to_numpy()], symbol, req)
             for symbol, bars in prices.items()]
    rows = pd.concat(parts, ignore_index=True) if parts else _empty_rows()
    code, uniques = pd.factorize(rows["headline"], sort=False)
    return NewsItems(rows=rows, texts=[str(t) for t in uniques], code=np.asarray(code))


def _symbol_rows(bars: pd.DataFrame, news: pd.DataFrame, symbol: str,
                 req: SignalRequest) -> pd.DataFrame:
    if news.empty:
        return _empty_rows()
    positions = align_news_to_bars(news["timestamp"], bars.index, day=news.get("day"))
    keep = positions >= max(0, first_headline_bar(positions, bars.index, req))
    texts = [clean_headline(h, i) for i, h in enumerate(news["headline"][keep])]
    if req.masker is not None:  # --anonymize: the text depends on the symbol (Company A = it)
        texts = [req.masker.mask(text, symbol) for text in texts]
    return pd.DataFrame({"symbol": symbol, "headline": texts, "position": positions[keep],
                         "timestamp": pd.DatetimeIndex(news["timestamp"][keep])})


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame({"symbol": pd.Series(dtype=object), "headline": pd.Series(dtype=object),
                         "position": pd.Series(dtype=np.int64),
                         "timestamp": pd.Series(dtype="datetime64[ns, UTC]")})


def _panels(prices: Mapping[str, pd.DataFrame], items: NewsItems, result: ScoreResult,
            half_life: float) -> dict[str, pd.DataFrame]:
    """Per-symbol decayed columns, stacked into calendar × symbols panels."""
    columns: dict[str, dict[str, pd.Series]] = {name: {} for name in PANELS}
    by_symbol = items.rows.groupby("symbol", sort=False).indices
    for symbol, bars in prices.items():
        rows = by_symbol.get(symbol, np.array([], dtype=np.int64))
        frame = per_bar(bars, items.rows["position"].to_numpy()[rows],
                        _subset(result, items.code[rows]), half_life)
        frame["vol"] = realised_vol(bars)
        for name in PANELS:
            columns[name][symbol] = frame[name]
    return {name: pd.DataFrame(cols).sort_index() for name, cols in columns.items()}


def _subset(result: ScoreResult, rows: np.ndarray) -> ScoreResult:
    """The scored items at ``rows`` (a headline's scores repeated for each of its symbols)."""
    return ScoreResult(probs=result.probs[rows], label_mass=result.label_mass[rows],
                       hits=0, misses=0, model_calls=0, items_scored=0, seconds=0.0,
                       items_per_s=0.0)
