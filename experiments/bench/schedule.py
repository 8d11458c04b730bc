"""What a point-in-time model schedule costs against one model: whole ``bt run`` processes.

Each round runs three arms alternately (load on a shared machine drifts): ``python -m llmbt run
--model-schedule FILE``; the same cutoffs with MODEL in every row (what switching costs, the work
unchanged); and ``--model MODEL``. Each arm runs first from an empty signal cache (every prompt
scored, each segment's model loaded), then again from the cache it filled (no model loaded). The
cold runs' own ``scoring`` line splits their time into model loads and scoring, so a schedule
should cost its extra loads and nothing more, and a cached schedule run what a cached
single-model run costs.
"""

from __future__ import annotations

import re
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from llmbt.errors import LlmbtError
from llmbt.experiments.bench.cached import timed_run

_SCORING = re.compile(r"^scoring: (?P<seconds>[\d.]+) s, .*?(?:model load (?P<load>[\d.]+) s)?$", re.M)


@dataclass(frozen=True)
class ScheduleBench:
    """The run both arms share, the schedule and the one model, and how many timed pairs."""

    schedule: str
    model: str
    data: str = "sample:GOOG"
    start: str = "2011-10-01"
    repeats: int = 3


#: The arms' column names: the schedule, its cutoffs with the one model in every row, the model.
ARMS = ("schedule", "one model, every cutoff", "one model")


def _args(bench: ScheduleBench, scorer: list[str], cache: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "llmbt", "run", "--strategy", "llm_sentiment", "--data", bench.data,
            "--start", bench.start, "--no-report", "--cache-dir", str(cache), *scorer]


def _cold_and_cached(bench: ScheduleBench, arm: str, scorer: list[str]) -> dict[str, float]:
    """One arm (its ``scorer`` flags) from an empty cache (process, scoring and load seconds),
    then cached (process)."""
    with tempfile.TemporaryDirectory(prefix="llmbt-bench-schedule-") as tmp:
        args = _args(bench, scorer, Path(tmp) / "signals")
        cold, out = timed_run(args)
        found = list(_SCORING.finditer(out))
        if not found:
            raise LlmbtError(f"`bt run` of the {arm} printed no scoring line with a time; is the "
                             "signal cache empty at the start?")
        cached, again = timed_run(args)
        if "model calls: 0 " not in again:
            raise LlmbtError(f"the cached run of the {arm} still called a model; is the signal "
                             "cache writable?")
    load = float(found[-1]["load"] or 0.0)
    return {"cold_process_s": cold, "cold_scoring_s": float(found[-1]["seconds"]) - load,
            "cold_model_load_s": load, "cached_process_s": cached}


def _same_model_schedule(bench: ScheduleBench, path: Path) -> None:
    """The schedule's cutoffs, each row naming ``bench.model``, written to ``path``."""
    from llmbt.signals_cache.model.schedule import load_schedule

    cutoffs = [seg.cutoff for seg in load_schedule(bench.schedule).segments]
    model = Path(bench.model).resolve() if Path(bench.model).exists() else bench.model
    path.write_text("cutoff,model\n" + "".join(f"{c},{model}\n" for c in cutoffs), encoding="utf-8")


def bench_schedule(bench: ScheduleBench) -> dict[str, dict[str, float | int]]:
    """Per arm of :data:`ARMS`, the median of each figure of :func:`_cold_and_cached` over
    ``bench.repeats`` alternating rounds, and each schedule's ratio to the one model of the cold
    and of the cached process time.

    Raises:
        LlmbtError: a run fails, prints no scoring time, or calls a model when cached.
    """
    if not Path(bench.schedule).is_file():
        raise LlmbtError(f"schedule {bench.schedule!r} not found; the study's prepare: script "
                         "saves it (examples/point_in_time/make_models.py)")
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory(prefix="llmbt-bench-schedule-") as tmp:
        same = Path(tmp) / "same.csv"  # written once, read by every round
        _same_model_schedule(bench, same)
        scorers = dict(zip(ARMS, (["--model-schedule", bench.schedule],
                                  ["--model-schedule", str(same)], ["--model", bench.model]),
                           strict=True))
        for _ in range(max(1, bench.repeats)):
            for arm, rows in runs.items():
                rows.append(_cold_and_cached(bench, arm, scorers[arm]))
    columns = {arm: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
               | {"rounds": len(rows)} for arm, rows in runs.items()}
    for arm in ARMS[:2]:
        for key in ("cold_process_s", "cached_process_s"):
            columns[arm][f"{key.removesuffix('_s')}_vs_one_model"] = (
                columns[arm][key] / columns[ARMS[2]][key])
    return columns
