"""The markdown a study writes (``docs/results/NAME.md``) and the blocks of it the docs include.

A results file is the study's table (the metrics of :data:`llmbt.reports.metrics.METRICS`,
formatted as ``bt run`` prints them, one column per return series, plus the study's extra rows)
between two markers, then one provenance line (run id, recipe hash, commit, machine, date)::

    <!-- study:demo recipe:0123456789abcdef -->
    | Metric | llm_sentiment | buy_and_hold |
    ...
    <!-- /study:demo -->
    Study `demo` (studies/demo.yaml), run 3c1d…, commit 8bce7c3, …

Any markdown file of the docs (and the README) may hold the same marked block: ``bt study run``
rewrites each one, so no table there is typed by hand, and a test checks each block names a study
whose recipe still matches. A figure quoted in a sentence is one cell of such a table
(:mod:`llmbt.reports.study_quotes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmbt.engine.metrics import bars_per_year as periods_per_year
from llmbt.reports.metrics import METRICS, headline_metrics

BLOCK = re.compile(r"<!-- study:(?P<name>[\w/-]+) recipe:(?P<hash>[0-9a-f]{16}) -->\n"
                   r"(?P<table>.*?)<!-- /study:(?P=name) -->", re.S)


def study_table(returns: Mapping[str, pd.Series], extra: Mapping[str, Mapping[str, str]]) -> str:
    """The markdown metric table of ``returns`` (one column each), with ``extra`` rows."""
    names = list(returns)
    ppy = periods_per_year(next(iter(returns.values())).index)
    values = {n: headline_metrics(r, ppy) for n, r in returns.items()}
    lines = ["| Metric | " + " | ".join(names) + " |", "|---" + "|---:" * len(names) + "|"]
    for metric, (_, fmt) in METRICS.items():
        lines.append(f"| {metric} | " + " | ".join(_metric(fmt, values[n][metric]) for n in names) + " |")
    for row, cells in extra.items():
        lines.append(f"| {row} | " + " | ".join(cells.get(n, "") for n in names) + " |")
    return "\n".join(lines) + "\n"


#: The rows of an ``evaluate`` study: label and how a column's metrics give the cell.
EVAL_ROWS = (
    ("weighted F1", lambda m: f"{m['weighted_f1']:.3f}"),
    ("macro F1", lambda m: f"{m['macro_f1']:.3f}"),
    ("accuracy", lambda m: f"{m['accuracy']:.3f}"),
    ("F1 bullish / bearish / neutral",
     lambda m: " / ".join(f"{m['per_class'][k]['f1']:.2f}" for k in ("bullish", "bearish", "neutral"))),
    ("mean confidence", lambda m: f"{m['mean_confidence']:.2f}"),
    ("ECE / Brier", lambda m: f"{m['ece']:.3f} / {m['brier']:.2f}"),
    ("ms per sentence", lambda m: f"{m['ms_per_item']:.1f}"),
    ("training", lambda m: _training(m)),
)


def render_table(kind: str, returns: Mapping[str, pd.Series], extra: Mapping[str, Mapping[str, str]],
                 columns: Mapping[str, Mapping[str, object]]) -> str:
    """The markdown table of a study of ``kind``: the metric table of ``returns`` (run,
    walkforward), the rows of :data:`EVAL_ROWS` per arm (evaluate) or one row per measurement
    (bench)."""
    if kind == "evaluate":
        return _grid(list(columns), [(label, [fmt(m) for m in columns.values()])
                                     for label, fmt in EVAL_ROWS], "Metric")
    if kind == "bench":
        keys = list(dict.fromkeys(k for c in columns.values() for k in c))
        return _grid(list(columns), [(k.replace("_", " "), [_value(c.get(k)) for c in columns.values()])
                                     for k in keys], "Measurement")
    return study_table(returns, extra)


#: The per-fold columns of a walk-forward study, when its folds.csv has them: label, format.
FOLD_COLUMNS = (("sharpe", "Sharpe", "{:.2f}"), ("total_return", "return", "{:.1%}"),
                ("eval_f1", "macro F1", "{:.2f}"), ("turnover", "turnover", "{:.1%}"))


def fold_table(folds: pd.DataFrame) -> str:
    """One row per fold of a walk-forward's ``folds.csv``: its test window, then each
    :data:`FOLD_COLUMNS` metric it has for each model (``—`` where a fold traded nothing)."""
    models = list(dict.fromkeys(folds["model"]))
    metrics = [(col, label, fmt) for col, label, fmt in FOLD_COLUMNS if col in folds.columns]
    names = ["test window"] + [f"{m} {label}" for _, label, _ in metrics for m in models]
    rows = []
    for fold, part in folds.groupby("fold", sort=True):
        by_model = part.set_index("model")
        first = part.iloc[0]
        cells = [f"{first['test_start']:%Y-%m-%d} … {first['test_end']:%Y-%m-%d}"]
        cells += [_cell(by_model, m, col, fmt) for col, _, fmt in metrics for m in models]
        rows.append((str(fold), cells))
    return _grid(names, rows, "Fold")


def _cell(by_model: pd.DataFrame, model: str, column: str, fmt: str) -> str:
    value = by_model[column].get(model) if model in by_model.index else None
    return "—" if value is None or pd.isna(value) else fmt.format(value)


def _grid(names: list[str], rows: list[tuple[str, list[str]]], corner: str) -> str:
    lines = [f"| {corner} | " + " | ".join(names) + " |", "|---" + "|---:" * len(names) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines) + "\n"


def _training(metrics: Mapping[str, object]) -> str:
    seconds = metrics.get("train_seconds")
    if seconds is None:
        return "—"
    minutes, rest = divmod(round(float(seconds)), 60)
    step = metrics.get("best_step")
    return f"{minutes} min {rest} s" + (f", best step {step}" if step else "")


def _value(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN: not measured
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def _metric(fmt: str, value: float) -> str:
    """``value`` as ``bt run`` prints it; ``—`` where it is undefined (NaN: an arm that never
    traded has no Sharpe)."""
    return "—" if value != value else fmt.format(value)


def block(name: str, recipe_hash: str, table: str) -> str:
    """``table`` between the study's markers."""
    return f"<!-- study:{name} recipe:{recipe_hash} -->\n{table}<!-- /study:{name} -->"


def render_tables(kind: str, returns: Mapping[str, pd.Series], extra: Mapping[str, Mapping[str, str]],
                  columns: Mapping[str, Mapping[str, object]],
                  folds: pd.DataFrame | None = None, statistics: str = "") -> dict[str, str]:
    """Every table of a study by block name: ``""`` the main one (:func:`render_table`), and for
    a walk-forward ``folds`` (:func:`fold_table`) and ``statistics``
    (:func:`llmbt.reports.study_stats.walkforward_statistics`), published as blocks
    ``NAME/folds`` and ``NAME/statistics``."""
    tables = {"": render_table(kind, returns, extra, columns)}
    if folds is not None and len(folds):
        tables["folds"] = fold_table(folds)
    if statistics:
        tables["statistics"] = statistics
    return tables


#: Rows of ``bt compare``'s table that a study leaves out: they measure this run's cache and
#: machine (a warm re-run scores nothing), not the arms.
RUN_ROWS = ("ms per scored item", "Cache hit rate")


def comparison_tables(metrics: pd.DataFrame, sentences: list[str]) -> dict[str, str]:
    """A compare study's tables: ``""`` the metric table ``bt compare`` prints (its
    :data:`~llmbt.reports.metrics.ROW_FORMATS`, blank where undefined; :data:`RUN_ROWS` left
    out), ``significance`` its sentences, one paragraph each."""
    from llmbt.reports.metrics import ROW_FORMATS

    kept = metrics.drop(index=[r for r in RUN_ROWS if r in metrics.index])
    rows = [(str(metric), [_metric(ROW_FORMATS.get(str(metric), "{:.4g}"), float(v)) for v in row])
            for metric, row in kept.iterrows()]
    return {"": _grid([str(c) for c in kept.columns], rows, "Metric"),
            "significance": "".join(f"{text}\n\n" for text in sentences).rstrip("\n") + "\n"}


#: The results page's heading of each table beside the main one.
HEADINGS = {"significance": "Whether the difference is real",
            "folds": "Per fold", "statistics": "Statistics (the run's own arms as the trials)",
            "engine": "Engine check (every value before each cut against the full run)",
            "signal": "The signal: IC decay and break-even cost"}
#: The horizons (bars) of a portfolio run study's signal table.
SIGNAL_HORIZONS = (1, 2, 5, 10, 20)


def signal_table(scores: pd.DataFrame, opens: pd.DataFrame, cost: float) -> str:
    """A portfolio run's scores against the next bars' open-to-open returns: per horizon the mean
    daily IC, its non-overlapping t-stat and days, the quintile spread, turnover and break-even
    cost (:func:`llmbt.reports.decay.ic_decay`), then where the IC peaks and which horizon pays
    the run's one-way ``cost``."""
    from llmbt.reports._signal_render import DECAY_NOTE, decay_frame, horizon_line
    from llmbt.reports.decay import ic_decay

    decay = ic_decay(scores, opens, horizons=SIGNAL_HORIZONS)
    frame = decay_frame(decay)
    rows = [(str(h), list(cells)) for h, cells in zip(decay.index, frame.to_numpy(), strict=True)]
    table = _grid(list(frame.columns), rows, "Horizon (bars)")
    return f"{table}\n{sentence(horizon_line(decay, cost))} {DECAY_NOTE} *: non-overlapping windows.\n"


def sentence(text: str) -> str:
    """``text`` as a sentence: its first letter capitalised, a full stop at the end."""
    return f"{text[0].upper()}{text[1:]}."


def block_name(study: str, table: str) -> str:
    """The marker name of a study's ``table`` (``""``: the study's own name)."""
    return f"{study}/{table}" if table else study


def study_of(name: str) -> str:
    """The study a block ``name`` belongs to (``universe_walkforward/folds``: ``universe_walkforward``)."""
    return name.split("/", 1)[0]


def results_markdown(title: str, name: str, recipe_hash: str, tables: Mapping[str, str],
                     provenance: str, facts: Mapping[str, object], about: str = "") -> str:
    """The whole ``docs/results/NAME.md`` page (``about``: the recipe's notes, before the tables)."""
    notes = "".join(f"- {k}: {v}\n" for k, v in facts.items())
    more = "".join(f"\n\n## {HEADINGS[key]}\n\n{block(block_name(name, key), recipe_hash, t)}"
                   for key, t in tables.items() if key)
    return (f"# {title}\n\n" + (f"{about.strip()}\n\n" if about.strip() else "")
            + f"{block(name, recipe_hash, tables[''])}{more}\n\n{provenance}\n"
            + (f"\n{notes}" if notes else ""))


def blocks_in(text: str) -> list[tuple[str, str, str]]:
    """(name, recipe hash, table) of every study block in ``text``."""
    return [(m["name"], m["hash"], m["table"]) for m in BLOCK.finditer(text)]


def replace_blocks(path: Path, name: str, recipe_hash: str, table: str) -> bool:
    """Rewrite the blocks of study ``name`` in the markdown file ``path``; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = BLOCK.sub(lambda m: block(name, recipe_hash, table) if m["name"] == name else m[0], text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
