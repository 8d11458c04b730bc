"""Scoring through a point-in-time model schedule (:mod:`llmbt.signals_cache.model.schedule`).

The items of a run (bars, headlines, a universe's headline rows, ``bt score``'s lines) are split by
time into the schedule's segments; each segment's items are rendered with its model's own
template (a chat template, or the plain completion template of a GPT-2-style base) and scored
through the normal signal cache under its own fingerprint, so a re-run makes no model call and
a model is loaded only when its segment misses the cache. The scores come back in item order,
NaN for items before the first cutoff when those are skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmbt.signals_cache.scoring.pipeline import ScoreResult, cost_facts

WARMUP_HINT = "; a run also scores its strategy's warm-up before --start"
#: ``render(spec, rows)``: the texts to score of the items at ``rows`` under model ``spec``.
Render = Callable[[Any, np.ndarray], list[str]]
#: ``score(texts, req, version)``: (scores, scorer) of rendered texts through the signal cache, as
#: :func:`llmbt.signals_cache.signals.score_rendered` gives them.
Score = Callable[[list[str], Any, str], tuple[ScoreResult, Any]]


@dataclass(frozen=True)
class Scheduled:
    """Scores of every item (NaN rows where skipped), each item's segment and the run facts."""

    result: ScoreResult
    segment: np.ndarray
    facts: dict[str, Any]

    @property
    def keep(self) -> np.ndarray:
        """Items that were scored (a segment of their own; False: before the first cutoff)."""
        return self.segment >= 0

    def kept(self) -> ScoreResult:
        """:attr:`result` of the scored items only, in item order."""
        keep = self.keep
        return dataclasses.replace(self.result, probs=self.result.probs[keep],
                                   label_mass=self.result.label_mass[keep])


def score_scheduled(times: Any, render: Render, req: Any, version: str,
                    what: str = "item", *, score: Score) -> Scheduled:
    """Score items by segment of ``req.schedule`` (``times``: each item's time); each segment's
    texts go through ``score`` with ``req`` set to the segment's model and no schedule.

    Raises:
        ConfigError: items before the first cutoff and the schedule refuses them.
    """
    from llmbt.signals_cache.model.loading import model_fingerprint

    schedule, stamps = req.schedule, pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    segment = schedule.segments_of(stamps, what, hint=WARMUP_HINT)
    parts, rows_facts = [], []
    for k in np.unique(segment[segment >= 0]):
        rows = np.flatnonzero(segment == k)
        segment_req = req.for_segment(int(k))
        spec = segment_req.spec
        result, scorer = score(render(spec, rows), segment_req, version)
        parts.append((rows, result))
        rows_facts.append(_segment_facts(schedule, int(k), stamps[rows], result, scorer,
                                         model_fingerprint(spec, "")))
    result = _merge(len(stamps), parts)
    facts = schedule_facts(schedule, rows_facts, int((segment < 0).sum()), what)
    return Scheduled(result, segment, facts)


def _merge(n: int, parts: list[tuple[np.ndarray, ScoreResult]]) -> ScoreResult:
    probs, mass = np.full((n, 3), np.nan), np.full(n, np.nan)
    for rows, res in parts:
        probs[rows], mass[rows] = res.probs, res.label_mass
    seconds = sum(r.seconds for _, r in parts)
    total = {name: sum(getattr(r, name) for _, r in parts)
             for name in ("hits", "misses", "model_calls", "items_scored")}
    return ScoreResult(probs=probs, label_mass=mass, seconds=seconds,
                       items_per_s=n / seconds if seconds > 0 else 0.0,
                       fingerprint=",".join(r.fingerprint for _, r in parts), **total)


def _segment_facts(schedule: Any, k: int, stamps: pd.DatetimeIndex, result: ScoreResult,
                   scorer: Any, fingerprint: str) -> dict[str, Any]:
    seg = schedule.segments[k]
    return {"row": seg.row, "cutoff": str(seg.cutoff), "model": seg.model, "adapter": seg.adapter,
            "fingerprint": fingerprint, "items": len(stamps),
            "first": f"{stamps.min():%Y-%m-%d}", "last": f"{stamps.max():%Y-%m-%d}",
            "model_calls": result.model_calls, "cache_hits": result.hits,
            "load_seconds": round(float(getattr(scorer, "load_seconds", 0.0)), 3),
            "postdates_cutoff": bool(stamps.min().date() > seg.cutoff)}


def schedule_facts(schedule: Any, segments: list[dict[str, Any]], skipped: int,
                   what: str = "item") -> dict[str, Any]:
    """The run facts of a scheduled scoring: ``model schedule`` (one line a segment),
    ``hindsight`` (plain: is every scored item after its model's cutoff?) and, for the results
    folder, ``schedule`` (the mapping as records)."""
    lines = [f"{s['model']}{' + ' + s['adapter'] if s['adapter'] else ''} (cutoff {s['cutoff']}) "
             f"scored {s['items']} {what}s {s['first']}..{s['last']}" for s in segments]
    if skipped:
        lines.append(f"{skipped} {what}s before the first cutoff skipped (--before-first skip)")
    return {"model schedule": f"{schedule.path}: " + "; ".join(lines),
            "hindsight": hindsight_of(segments), "schedule": segments}


def hindsight_of(segments: list[dict[str, Any]]) -> str:
    """``none possible`` when every segment's items postdate its model's cutoff, else which do not."""
    late = [s for s in segments if not s["postdates_cutoff"]]
    if segments and not late:
        return ("none possible: every scored item postdates the cutoff of the model that scored "
                "it (" + "; ".join(f"{s['model']} cutoff {s['cutoff']}: {s['first']}..{s['last']}"
                                   for s in segments) + ")")
    if not segments:
        return "none: nothing was scored"
    return "POSSIBLE: " + "; ".join(f"{s['model']} (cutoff {s['cutoff']}) scored items from "
                                    f"{s['first']}" for s in late)


def scheduled_info(sched: Scheduled, req: Any, version: str, n: int) -> dict[str, Any]:
    """The signal facts of a scheduled run, as :func:`llmbt.signals_cache.signals.score_info`
    gives them for one model."""
    result, kept = sched.result, int(sched.keep.sum())
    segments = sched.facts["schedule"]
    load = sum(s["load_seconds"] for s in segments)
    info = {"signals": f"{n} {req.mode[:-1]} prompts ({kept} scored), template {version}, "
                       f"{len(segments)} model(s) of schedule {req.schedule.path}"}
    info |= cost_facts(result, kept, load)
    info["scorer fingerprint"] = f"schedule {result.fingerprint} ({version})"
    return info | sched.facts
