"""One frozen, typed configuration per run; its hash is the run id and the cache key of the run.

A :class:`RunConfig` is validated on creation, so a bad value fails before any data is loaded.
Each error names the CLI flag (and YAML key) that sets the value, and how to fix it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from llmbt.errors import ConfigError, did_you_mean, reject_unknown_keys

if TYPE_CHECKING:
    from llmbt.strategies.params import StrategyParams

SIZERS = ("percent", "fixed")
#: Fields added after run ids were first published: left out of the id at their default, so
#: earlier runs keep their ids (an anonymised run's id differs).
_ID_DEFAULTS = {"model_cutoff": None, "anonymize": False, "names": None, "scorer": "lm",
                "calibrate": True, "select": None, "membership": None, "model_schedule": None,
                "cutoff_gap": 0, "before_first": "refuse"}
BEFORE_FIRST = ("refuse", "skip")  # = llmbt.signals_cache.model.schedule.BEFORE_FIRST
MODES = ("bars", "headlines")
QUANTIZATIONS = ("none", "8bit", "4bit")
PRECISIONS = ("auto", "float32", "bf16")  # = llmbt.signals_cache.model.precision.PRECISIONS
#: Each precision under its old name (YAML key ``engine``, flag ``--engine``): what run ids hash, so
#: runs from before the rename keep their ids (= llmbt.signals_cache.model.precision.ENGINE_NAMES).
ENGINE_NAMES = {"auto": "auto", "float32": "torch", "bf16": "torch-bf16"}
_FROM_ENGINE = {name: precision for precision, name in ENGINE_NAMES.items()}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a backtest's result.

    Attributes:
        strategy: registered strategy name (``bt run --strategy``).
        data: price source URI, e.g. ``sample:GOOG``, ``csv:prices.csv``, ``yahoo:AAPL``; for a
            portfolio strategy a universe: ``yahoo:AAPL,MSFT``, a long file with a ``symbol``
            column, or a folder of per-symbol files.
        symbols: the universe's symbols to keep (``AAPL,MSFT`` or a file, one per line); None = all.
        start, end: inclusive date range (ISO strings); None for all data. The default start
            (2011-01-01) keeps the default LLM run short on a laptop CPU.
        interval: bar size for downloaded data (``1d``, ``1h``…).
        cash: starting cash. commission: fraction of traded value (0.001 = 0.1 %).
        slippage: fraction of price paid on every fill, against the trader.
        sizer: ``percent`` (of portfolio value, ``size`` in %) or ``fixed`` (``size`` units).
        params: strategy parameters (``--param key=value``): a mapping when made, stored as the
            strategy's typed frozen value (:class:`~llmbt.strategies.params.StrategyParams`,
            its ``to_dict()`` in the YAML and the run id).
        benchmark: strategy run on the same data as the benchmark (``buy_and_hold``) or ``none``.
        mode, news, news_tz: signal mode, headline file and its time zone (LLM strategies).
        model, adapter, quantization: the scoring model (LLM strategies).
        precision: scoring precision (``--precision``): ``float32`` (the reference), ``bf16``,
            or ``auto`` (the fastest measured exact enough here;
            :func:`llmbt.signals_cache.model.precision.resolve_precision`). Read from an old
            ``engine`` key too (:meth:`from_dict`).
        prompt: prompt template version (``bars-v2``…); None = the mode's default. Checked
            against ``mode`` by :func:`llmbt.engine.signals.check_prompt` before data is loaded.
        batch_size: scoring batch size. cache_dir: signal cache folder (default under the home dir).
        model_cutoff: the model's knowledge cutoff (YYYY-MM-DD), overriding its alias's; reports
            warn when the tested period lies before it.
        anonymize: mask company names and tickers in headlines before scoring (``names`` table).
        model_schedule: a point-in-time model schedule (``--model-schedule FILE``,
            :mod:`llmbt.signals_cache.model.schedule`) that chooses the model by each item's
            time, in place of ``model``; ``cutoff_gap`` (days) and ``before_first`` (``refuse``
            or ``skip`` items before the first cutoff) shape it.
        names: CSV ``symbol,company`` of the names to mask (``--names``).
        scorer: the kind of scorer (``--scorer``): ``lm`` (the model's label probabilities on
            prompts) or a registered text scorer such as ``lexicon`` (also an arm's ``kind``:
            ``bt compare --arm name=x,kind=lexicon``), for single-symbol and universe runs;
            checked by the CLI before data is loaded and where the signals are computed.
        calibrate: scale the scores by the temperature ``bt evaluate --calibrate-on`` stored
            beside the adapter (or head) folder, if there is one (default); False
            (``--no-calibration``) scores with the raw probabilities.
        select: a point-in-time universe selection rule (``--select``), e.g. ``news:30:252`` (the
            30 symbols with the most headlines over the trailing 252 bars) or
            ``dollar-volume:50:63``; evaluated at every bar with data up to that bar only.
        membership: CSV ``symbol,start,end`` (``--membership``): a symbol is tradable only while
            it is a member (e.g. historical index membership).
    """

    strategy: str = "sma_cross"
    data: str = "sample:GOOG"
    symbols: str | None = None
    start: str | None = "2011-01-01"
    end: str | None = None
    interval: str = "1d"
    cash: float = 100_000.0
    commission: float = 0.001
    slippage: float = 0.0
    sizer: str = "percent"
    size: float = 95.0
    params: StrategyParams | Mapping[str, Any] = field(default_factory=dict)
    benchmark: str = "buy_and_hold"
    mode: str = "bars"
    news: str | None = None
    news_tz: str | None = None
    model: str = "smollm2-135m"
    adapter: str | None = None
    quantization: str = "none"
    precision: str = "auto"
    prompt: str | None = None
    batch_size: int = 16
    cache_dir: str | None = None
    model_cutoff: str | None = None
    anonymize: bool = False
    names: str | None = None
    scorer: str = "lm"
    calibrate: bool = True
    select: str | None = None
    membership: str | None = None
    model_schedule: str | None = None
    cutoff_gap: int = 0
    before_first: str = "refuse"

    def __post_init__(self) -> None:
        for name in ("cash", "commission", "slippage", "size", "batch_size"):
            _coerce_number(self, name)
        _check(self.cash > 0, "--cash", self.cash, "must be positive, e.g. --cash 100000")
        _check(0 <= self.commission < 0.1, "--commission", self.commission,
               "is a fraction of traded value: use e.g. 0.001 for 0.1 %")
        _check(0 <= self.slippage < 0.1, "--slippage", self.slippage,
               "is a fraction of price: use e.g. 0.0005 for 5 bp")
        _check_choice("--sizer", self.sizer, SIZERS)
        _check(self.size > 0 and (self.sizer != "percent" or self.size <= 100), "--size", self.size,
               "must be in (0, 100] for --sizer percent, or a positive number of units for fixed")
        _check_choice("--mode", self.mode, MODES)
        _check_choice("--quantization", self.quantization, QUANTIZATIONS)
        _check_precision(self.precision)
        _check(self.batch_size >= 1, "--batch-size", self.batch_size, "must be at least 1")
        _check_dates(self.start, self.end)
        _check_lookahead_controls(self)
        _check_schedule(self)
        _check_params(self)
        if not isinstance(self.calibrate, bool):
            raise ConfigError(f"YAML key 'calibrate' = {self.calibrate!r} must be true or false "
                              "(false = --no-calibration: ignore the adapter's stored temperature)")
        _check(bool(str(self.scorer).strip()), "scorer", self.scorer, "is empty: use lm or lexicon")
        _check(bool(str(self.data).strip()), "--data", self.data, "is empty: use e.g. sample:GOOG")

    @property
    def run_id(self) -> str:
        """A stable 12-hex-digit hash of every field: equal configs give equal ids."""
        data = {k: v for k, v in self.id_dict().items() if _ID_DEFAULTS.get(k, ...) != v}
        blob = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def __hash__(self) -> int:
        return hash(self.run_id)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the YAML form)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return data | {"params": self.params.to_dict()}

    def id_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` as ids and fingerprints hash it: the precision under its old key and
        name (``engine``: ``auto``, ``torch`` or ``torch-bf16``), so ids from before the rename stay."""
        data = self.to_dict()
        data["engine"] = ENGINE_NAMES[data.pop("precision")]
        return data

    def replace(self, **overrides: Any) -> RunConfig:
        """A copy with the given fields changed; ``None`` values are ignored (flag not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        _reject_unknown(given)
        if "params" in given:
            given["params"] = {**self.params.to_dict(), **_param_values(given["params"])}
        return dataclasses.replace(self, **given)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config", warn: bool = True) -> RunConfig:
        """Build from a mapping, rejecting unknown keys with "Did you mean …?". An old ``engine``
        key is read as ``precision`` (``torch`` as ``float32``, ``torch-bf16`` as ``bf16``),
        logging a deprecation warning unless ``warn`` is off (a results folder written before)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of keys to values, got {type(data).__name__}")
        data = _renamed_engine(dict(data), source, warn)
        _reject_unknown(data, source)
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Load a YAML file whose keys are the field names (``--config run.yaml``)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found: check the --config path")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def field_names() -> list[str]:
    return [f.name for f in fields(RunConfig)]


def _reject_unknown(data: Mapping[str, Any], source: str = "config") -> None:
    reject_unknown_keys(data, field_names(), source)


def _flag_key(flag: str) -> str:
    return f"{flag} (YAML key {flag.lstrip('-').replace('-', '_')!r})"


def _check(ok: bool, flag: str, value: Any, fix: str) -> None:
    if not ok:
        raise ConfigError(f"{_flag_key(flag)} = {value!r} {fix}")


def _check_choice(flag: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{_flag_key(flag)} = {value!r} is not one of {', '.join(choices)}."
                          f"{did_you_mean(str(value), choices)}")


def _check_precision(value: Any) -> None:
    if value in _FROM_ENGINE and value not in PRECISIONS:
        raise ConfigError(f"{_flag_key('--precision')} = {value!r} is the old --engine name: "
                          f"use {_FROM_ENGINE[value]}")
    _check_choice("--precision", value, PRECISIONS)


def _renamed_engine(data: dict[str, Any], source: str, warn: bool) -> dict[str, Any]:
    """``data`` with an old ``engine`` key (auto, torch, torch-bf16) as ``precision``."""
    if "engine" not in data:
        return data
    value = data.pop("engine")
    if "precision" in data:
        raise ConfigError(f"{source}: 'engine' is the old name of 'precision'; keep only precision")
    if value not in _FROM_ENGINE:
        raise ConfigError(f"{source}: engine {value!r} is not one of {', '.join(_FROM_ENGINE)}."
                          f"{did_you_mean(str(value), _FROM_ENGINE)} (engine is the old name of "
                          f"precision: use precision: {', '.join(PRECISIONS)})")
    if warn:
        log.warning("%s: key 'engine' is deprecated: use precision: %s", source, _FROM_ENGINE[value])
    return data | {"precision": _FROM_ENGINE[value]}


def _coerce_number(cfg: RunConfig, name: str) -> None:
    value = getattr(cfg, name)
    kind = int if name == "batch_size" else float
    try:
        number = kind(value)
    except (TypeError, ValueError):
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{_flag_key(flag)} = {value!r} is not a number") from None
    if isinstance(value, bool) or (kind is int and number != value):
        raise ConfigError(f"{_flag_key('--' + name.replace('_', '-'))} = {value!r} must be a whole number")
    object.__setattr__(cfg, name, number)


def _check_dates(start: str | None, end: str | None) -> None:
    import pandas as pd

    parsed = {}
    for flag, value in (("--start", start), ("--end", end)):
        if value is None:
            continue
        try:
            parsed[flag] = pd.Timestamp(str(value))
        except (ValueError, TypeError):
            raise ConfigError(f"{_flag_key(flag)} = {value!r} is not a date: use YYYY-MM-DD") from None
    if len(parsed) == 2 and parsed["--start"] > parsed["--end"]:
        raise ConfigError(f"--start {start!r} is after --end {end!r}: swap them")


def _check_lookahead_controls(cfg: RunConfig) -> None:
    import datetime as dt

    if cfg.model_cutoff is not None:
        try:
            day = dt.date.fromisoformat(str(cfg.model_cutoff)[:10])
            if len(str(cfg.model_cutoff)) != 10:
                raise ValueError
        except ValueError:
            raise ConfigError(f"{_flag_key('--model-cutoff')} = {cfg.model_cutoff!r} is not a "
                              "date: use YYYY-MM-DD (the end of the model's training data)") from None
        object.__setattr__(cfg, "model_cutoff", day.isoformat())
    _check(isinstance(cfg.anonymize, bool), "--anonymize", cfg.anonymize, "must be true or false")
    _check(not cfg.anonymize or cfg.names is not None, "--anonymize", cfg.anonymize,
           "needs --names FILE (CSV symbol,company, e.g. ../shared/data/news/sp500_companies.csv)")


def _check_schedule(cfg: RunConfig) -> None:
    _check_choice("--before-first", cfg.before_first, BEFORE_FIRST)
    _check(isinstance(cfg.cutoff_gap, int) and not isinstance(cfg.cutoff_gap, bool)
           and cfg.cutoff_gap >= 0, "--cutoff-gap", cfg.cutoff_gap, "must be whole days >= 0")
    if cfg.model_schedule is None:
        _check(cfg.cutoff_gap == 0 and cfg.before_first == "refuse", "--cutoff-gap",
               cfg.cutoff_gap, "and --before-first shape --model-schedule; pass one")
        return
    _check(cfg.adapter is None, "--adapter", cfg.adapter, "cannot go with --model-schedule: give "
           "each model's adapter in the schedule's adapter column")
    _check(cfg.scorer == "lm", "--scorer", cfg.scorer, "cannot go with --model-schedule, which "
           "chooses language models: use --scorer lm")


def _check_params(cfg: RunConfig) -> None:
    """``params`` validated once into the strategy's typed frozen value (``--param fast=5`` and
    YAML ``fast: 5`` are one configuration, one run id); nothing downstream coerces them again."""
    from llmbt.strategies.registry import validated_params

    object.__setattr__(cfg, "params", validated_params(cfg.strategy, cfg.params))


def _param_values(params: Any) -> dict[str, Any]:
    """The given values of ``params``: a typed value's ``to_dict()``, or the mapping itself."""
    return params.to_dict() if hasattr(params, "to_dict") else dict(params)
