"""The model's own look-ahead: does the tested period lie before the model's knowledge cutoff?

A price engine cannot look ahead, but a pretrained language model may have read about the very
events it is asked to judge: SmolLM2 was trained on web text up to 2024, so a backtest of 2015
asks it about a past it may know. :func:`hindsight_warning` says so in one plain sentence; every
LLM run report carries it (``hindsight`` in the run's signal facts).
"""

from __future__ import annotations

import pandas as pd

_SEE = "see --anonymize and bt audit lookahead"


def hindsight_warning(cutoff: str | None, start: object, end: object,
                      model: str = "the model") -> str | None:
    """A plain sentence when the tested period ``start..end`` lies (partly) before ``cutoff``.

    Args:
        cutoff: the model's knowledge cutoff (ISO date), None when unknown.
        start, end: the tested period (dates, ISO strings or Timestamps).
        model: the model's name, for the sentence.

    Returns:
        The warning, or None when the whole period lies after the cutoff.
    """
    first, last = _day(start), _day(end)
    period = f"the tested period {first}..{last}"
    if cutoff is None:
        return (f"{model}'s knowledge cutoff is unknown (cutoff unknown), so {period} may lie "
                f"before it and the model may have read about these events; pass "
                f"--model-cutoff YYYY-MM-DD, and {_SEE}")
    limit = pd.Timestamp(str(cutoff)).date()
    if first > limit:
        return None
    where = "lies before" if last <= limit else "lies partly before"
    return (f"{period} {where} {model}'s knowledge cutoff ({limit}): the model may have read "
            f"about these events; {_SEE}")


def _day(value: object):
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert(None) if stamp.tzinfo else stamp).date()


def hindsight_line(model: str, override: str | None, first: pd.Timestamp, last: pd.Timestamp,
                   scorer: str = "lm") -> str:
    """The ``hindsight`` run fact: does the tested period ``first..last`` lie (partly) before the
    knowledge cutoff of ``model`` (``override``: ``--model-cutoff``), or after it? A ``scorer``
    kind that reads no pretrained model (the lexicon) has no cutoff, whatever ``model`` is."""
    from llmbt.signals_cache.model.aliases import model_cutoff
    from llmbt.signals_cache.text_scorers.registry import reads_pretrained

    if not reads_pretrained(scorer):
        return (f"none: the {scorer} scorer reads no pretrained model, so it has no training "
                "data cutoff")
    cutoff = model_cutoff(model, override)
    note = hindsight_warning(cutoff, first, last, model=model)
    return note or (f"none: the tested period {first.date()}..{last.date()} starts after {model}'s "
                    f"knowledge cutoff ({cutoff})")
