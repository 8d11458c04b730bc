"""The signal columns of a :class:`~llmbt.strategies.base.SignalStrategy`, computed before the loop.

The strategy declares what it needs (:meth:`~llmbt.strategies.base.SignalStrategy.signal_spec`) and
finishes the scored columns without I/O (:meth:`~llmbt.strategies.base.SignalStrategy.finish_signals`);
the model, prompts and cache calls (:mod:`llmbt.signals_cache`) are made from here, by the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.feeds import load_news, symbol_of
from llmbt.signals_cache.hindsight import hindsight_line


def prepare_signals(cls: Any, prices: pd.DataFrame, config: RunConfig,
                    news: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """Score every bar of ``prices`` as ``cls`` asks and let it finish the columns.

    Args:
        cls: the strategy class (a ``SignalStrategy``).
        prices: the bars signals are computed from (the run's bars plus the warm-up history).
        config: the run's configuration (model, prompt, mode, news, cache).
        news: the run's headlines as :func:`signal_inputs` loaded them (None: loaded here).

    Returns:
        A frame indexed like ``prices`` with the strategy's signal columns, and the run facts of the
        scoring (model calls, cache hits…) for the report.
    """
    return signals_from(cls, prices, config, signal_inputs(config) if news is None else news)


def signal_inputs(config: RunConfig) -> pd.DataFrame | None:
    """The run's headlines (None without ``--news``), loaded and checked with the rest of what
    scoring reads (``--mode headlines`` has ``--news``, the ``--anonymize`` names file) before
    the run starts, so such an error is not preceded by the header of a run that never started.

    Raises:
        ConfigError: ``--mode headlines`` without ``--news``; DataError: a bad news or names file.
    """
    from llmbt.signals_cache.signals import NO_NEWS

    if config.mode == "headlines" and not config.news:
        raise ConfigError(NO_NEWS)
    load_masker(config)
    return load_news(config.news, tz=config.news_tz) if config.news else None


def signals_from(cls: Any, prices: pd.DataFrame, config: RunConfig,
                 news: pd.DataFrame | None) -> tuple[pd.DataFrame, dict]:
    """:func:`prepare_signals` from already-loaded headlines ``news`` (None: no headlines), so
    ``bt audit lookahead`` recomputes the signals of truncated data through the same code."""
    from llmbt.signals_cache.signals import compute_signals

    spec = cls.signal_spec(config.params)  # typed when the config was made
    req = run_request(config, mode=config.mode, symbol=symbol_of(config.data),
                      half_life=spec.half_life, warmup=spec.warmup,
                      score_from=pd.Timestamp(config.start, tz="UTC") if config.start else None)
    frame, info = compute_signals(prices, req, news)
    facts = lookahead_info(config, prices.index, bars=config.mode == "bars")
    return cls.finish_signals(frame, config.params), info | facts


def scorer_id(config: RunConfig) -> Any:
    """The run's :class:`~llmbt.signals_cache.scorer_id.ScorerId`, built once from its flags: the
    model (``--model``, ``--adapter``, ``--quantization``, ``--precision``) or the text scorer
    ``--scorer`` (which takes ``--adapter`` as its own artefact folder), ``--no-calibration`` and
    ``--prompt``. Every command that scores for a run (``bt run``, ``bt score``, ``bt compare``,
    the walk-forward, ``bt evaluate --news``) and ``bt cache clear`` name the scorer through it."""
    from llmbt.signals_cache.scorer_id import ScorerId

    return ScorerId(kind=config.scorer, model=config.model, adapter=config.adapter,
                    quantization=config.quantization, precision=config.precision,
                    calibrate=config.calibrate, template=config.prompt)


def run_request(config: RunConfig, **fields: Any) -> Any:
    """The :class:`~llmbt.signals_cache.signals.SignalRequest` of ``config``: its scorer
    (:func:`scorer_id`), signal cache, batch size, ``--anonymize`` masker and ``--model-schedule``
    (whose rows replace the scorer's model and adapter by item time); ``fields`` add the rest
    (mode, symbol, decay, warm-up...)."""
    from llmbt.signals_cache.signals import SignalRequest

    return SignalRequest(scorer=scorer_id(config), cache_dir=config.cache_dir,
                         batch_size=config.batch_size, masker=load_masker(config),
                         schedule=run_schedule(config), **fields)


def scorer_fingerprints(config: RunConfig) -> list[str]:
    """The signal-cache fingerprint(s) of ``config``'s scorer, as a run of it keys its scores
    (:meth:`~llmbt.signals_cache.scorer_id.ScorerId.fingerprint`); one per model of a
    ``--model-schedule``. What ``bt cache clear`` removes."""
    scorer, schedule = scorer_id(config), run_schedule(config)
    if schedule is None:
        return [scorer.fingerprint()]
    return list(dict.fromkeys(scorer.with_model(seg.model, seg.adapter).fingerprint()
                              for seg in schedule.segments))


def run_schedule(config: RunConfig) -> Any:
    """The validated :class:`~llmbt.signals_cache.model.schedule.ModelSchedule` of
    ``--model-schedule`` (with ``--cutoff-gap`` and ``--before-first``); None without one."""
    if not config.model_schedule:
        return None
    from llmbt.signals_cache.model.schedule import load_schedule

    return load_schedule(config.model_schedule, config.cutoff_gap, config.before_first)


def bar_symbol(config: RunConfig) -> str:
    """The symbol a bar prompt shows: ``--data``'s, or with ``--anonymize`` ``Company A`` (as
    :func:`llmbt.signals_cache.signals.shown_symbol` shows it in the backtest's prompts)."""
    from llmbt.signals_cache.anonymize import FOCAL

    return FOCAL if config.anonymize else symbol_of(config.data)


def load_masker(config: RunConfig):
    """The names masker of ``--anonymize --names FILE``; None without ``--anonymize``."""
    if not config.anonymize:
        return None
    from llmbt.signals_cache.anonymize import load_masker as load

    return load(config.names)


def lookahead_info(config: RunConfig, index: pd.DatetimeIndex, bars: bool = False) -> dict[str, str]:
    """The run facts of the LLM look-ahead controls: ``hindsight`` (is the tested period, the
    bars of ``index`` from ``--start`` to ``--end``, before the knowledge cutoff of the model
    ``--scorer`` reads through?) and, with ``--anonymize``, ``anonymized``: what was masked in
    headline prompts, or (``bars``) in bar prompts."""
    first = max(index[0], pd.Timestamp(config.start, tz=index.tz)) if config.start else index[0]
    last = min(index[-1], pd.Timestamp(config.end, tz=index.tz)) if config.end else index[-1]
    info = {} if config.model_schedule else {  # a schedule's scoring says it per segment
        "hindsight": hindsight_line(config.model, config.model_cutoff, first, last,
                                    scorer=config.scorer)}
    if config.anonymize:
        info["anonymized"] = _masked_line(config, bars)
    return info


def _masked_line(config: RunConfig, bars: bool) -> str:
    """The ``anonymized`` run fact: exactly what ``--anonymize`` masked."""
    if not bars:
        return (f"company names and tickers of {config.names} masked before scoring "
                "(Company A = the headline's own company)")
    if config.scorer != "lm":
        return f"nothing to mask: the {config.scorer} scorer's bar inputs show no symbol"
    return (f"the symbol {symbol_of(config.data)} shown as {bar_symbol(config)} in every bar prompt "
            "(bar prompts carry no other names)")


def arms_hindsight(info: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The hindsight lines of arms (``info``: each arm's signal facts): the one line they share,
    else each distinct line after the arms it is of (``lex: none: ...``, ``base, lora: ...``)."""
    arms: dict[str, list[str]] = {}
    for name, facts in info.items():
        arms.setdefault(str(facts.get("hindsight")), []).append(name)
    if len(arms) == 1:
        return list(arms)
    return [f"{', '.join(names)}: {line}" for line, names in arms.items()]


def check_prompt(config: RunConfig) -> None:
    """Refuse a ``--prompt`` that is not a template of ``--mode``, before any data is loaded.

    Raises:
        ConfigError: naming the flag, the template and the versions that fit.
    """
    if config.prompt is None:
        return
    from llmbt.signals_cache.scoring.prompts import template_for

    try:
        template_for(config.mode, config.prompt)
    except ConfigError as exc:
        raise ConfigError(f"--prompt: {exc}") from exc
