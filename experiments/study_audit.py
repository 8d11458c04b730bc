"""The ``audit`` study kind: ``bt audit lookahead`` on a recipe's run, published as tables.

::

    kind: audit
    config: {strategy: llm_news_portfolio, names: ../shared/data/news/sp500_companies.csv, ...}
    audit:
      cuts: 5             # random dates the bars and headlines are truncated at
      seed: 0             # seed of the cut dates
      model_check: true   # also run the portfolio with and without --anonymize (needs names)

The engine check proves every value before each cut unchanged; the model check runs the
portfolio with original and with anonymised headlines (every masked headline is a new prompt,
scored once and cached). The statistics of the two arms are computed in
:mod:`llmbt.reports.audit`, above this layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError, reject_unknown_keys


@dataclass(frozen=True)
class AuditSettings:
    """The ``audit:`` block of a recipe (see the module docstring)."""

    cuts: int = 5
    seed: int = 0
    model_check: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.cuts, int) or self.cuts < 1:
            raise ConfigError(f"audit cuts {self.cuts!r} must be a whole number of at least 1 "
                              "(as bt audit lookahead --cuts).")
        if not isinstance(self.model_check, bool):
            raise ConfigError(f"audit model_check {self.model_check!r} must be true or false.")


@dataclass(frozen=True)
class AuditOutcome:
    """What an audit study measured: the engine check and, when asked, the model check."""

    engine: Any  # llmbt.experiments.audit.EngineAudit
    model: Any = None  # llmbt.experiments.audit.ModelCheck, or None


def audit_settings(data: dict[str, Any], study: str) -> AuditSettings:
    """The validated ``audit:`` block of study ``study``.

    Raises:
        ConfigError: an unknown key or a bad value, naming the study.
    """
    reject_unknown_keys(data, AuditSettings.__dataclass_fields__, f"study {study} audit")
    try:
        return AuditSettings(**data)
    except ConfigError as exc:
        raise ConfigError(f"study {study}: {exc}") from exc


def run_audit(config: RunConfig, settings: AuditSettings) -> AuditOutcome:
    """The engine check of ``config`` and, with ``model_check``, both arms of the model check."""
    from llmbt.experiments.audit import audit_engine, model_check

    engine = audit_engine(config, cuts=settings.cuts, seed=settings.seed)
    return AuditOutcome(engine, model_check(config) if settings.model_check else None)


def audit_facts(outcome: AuditOutcome) -> dict[str, str]:
    """The page's notes: the engine check's time, and each arm's scoring and hindsight lines."""
    facts = {"engine check": f"{outcome.engine.seconds:.1f} s for {len(outcome.engine.checks)} cuts"}
    if outcome.model is not None:
        for arm in ("original", "anonymized"):
            info = getattr(outcome.model, arm).signal_info
            facts[f"{arm} headlines"] = str(info.get("model calls", info.get("signals", "")))
        facts["hindsight"] = outcome.model.hindsight
    return facts
