"""The statistics table of a walk-forward study, computed from its results folder.

A universe walk-forward gets the cross-section statistics ``bt walkforward`` prints
(:func:`llmbt.reports.universe_wf.universe_wf_stats`): each arm's mean daily IC, its IC and Sharpe
differences against the base model with block-bootstrap intervals, its SPA p-value against equal
weight and the Deflated Sharpe with the arms as the trials. A single-symbol walk-forward gets the
significance sentences of ``bt compare --from`` (:func:`llmbt.reports.compare.compare`). Both
count the run's own arms only (``--trials run``), never the trial ledger, whose content depends on
what else ran on the machine, so the table regenerates byte for byte from the folder. Every
bootstrap is seeded.
"""

from __future__ import annotations

from typing import Any


def walkforward_statistics(res: dict[str, Any]) -> str:
    """The markdown statistics of a walk-forward results folder read by
    :func:`llmbt.experiments.results.read_results` ("" when it holds a single model, which has
    nothing to be compared with)."""
    if len(res["scores"]) < 2:
        return ""
    if res["config"].get("universe") or res["opens"] is not None:
        return _universe(res)
    return _single(res)


def _universe(res: dict[str, Any]) -> str:
    from llmbt.experiments.wf_config import BASE
    from llmbt.reports.universe_wf import universe_daily_ic, universe_wf_stats

    arms = sorted(res["scores"], key=lambda arm: arm != BASE)  # the base model is the reference
    horizon = int(res["config"]["horizon"])
    daily = universe_daily_ic({a: res["scores"][a] for a in arms}, res["opens"], horizon)
    stats, skipped = universe_wf_stats(res["returns"], daily, horizon, arms=arms,
                                       periods=float(res["periods_per_year"]))
    ref = arms[0]
    rows = [("mean daily IC (t, p)", [_ic(stats["ic"][a]) for a in arms]) if "ic" in stats else None,
            (f"IC − {ref}, 95 % CI (p)", _diffs(stats, "ic_difference", arms, "{:+.4f}")),
            (f"Sharpe − {ref}, 95 % CI (p)", _diffs(stats, "sharpe_difference", arms, "{:+.2f}")),
            ("SPA p against equal weight, alone",
             [f"{stats['spa_arms'][a]['p_consistent']:.2f}" for a in arms]) if "spa_arms" in stats else None,
            (f"Deflated Sharpe (N = {len(arms)} arms)",
             [f"{stats['dsr']['dsrs'][a]:.2f}" for a in arms]) if "dsr" in stats else None]
    lines = ["| Statistic | " + " | ".join(arms) + " |", "|---" + "|---:" * len(arms) + "|"]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in filter(None, rows)]
    if "spa" in stats:
        spa = stats["spa"]
        lines.append(f"| SPA p of all arms against equal weight | {spa['p_consistent']:.2f}"
                     + " |" * len(arms))
    lines += [f"| {key}: not computed | {why}" + " |" * len(arms) for key, why in skipped.items()]
    return "\n".join(lines) + "\n"


def _ic(ic: dict[str, Any]) -> str:
    return f"{ic['mean_ic']:+.4f} ({ic['t_stat_nonoverlap']:.2f}, {ic['p_value']:.2f})"


def _diffs(stats: dict[str, Any], key: str, arms: list[str], fmt: str) -> list[str]:
    by_arm = {d["arms"][0]: d for d in stats.get(key, [])}
    return ["—" if a not in by_arm else
            f"{fmt.format(by_arm[a]['diff'])} [{fmt.format(by_arm[a]['low'])}, "
            f"{fmt.format(by_arm[a]['high'])}] ({by_arm[a]['p_value']:.2f})" for a in arms]


def _single(res: dict[str, Any]) -> str:
    from llmbt.reports.compare import compare

    comp = compare(res["returns"], res["scores"], horizon=int(res["config"]["horizon"]))
    return "".join(f"- {sentence}\n" for sentence in comp.significance)
