"""How a model's backtest is measured, shared by walk-forward folds and ``bt compare --arm``:
labelled bar examples of a window, the model's scores on them against the realised labels, and the
run facts of a backtest."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llmbt.engine.config import RunConfig
from llmbt.engine.runner import RunResult
from llmbt.engine.signals import bar_symbol, run_request
from llmbt.errors import LlmbtError
from llmbt.experiments.trial_ids import scorer_fingerprint


def window_examples(prices: pd.DataFrame, run: RunConfig, *, horizon: int, method: str,
                    fit_end: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp) -> list:
    """Labelled bar examples timed in ``[start, end]``, labels from up to ``horizon`` bars after
    ``end``; thresholds fitted on bars whose forward window ends by ``fit_end``; their symbol is
    the one ``run``'s bar prompts show (:func:`~llmbt.engine.signals.bar_symbol`).

    Features are computed from the first bar of ``prices``, as the backtest computes them, so the
    examples' prompts are exactly the backtest's prompts (cache hits).
    """
    from llmbt.signals_cache.finetune.labelling import bar_examples

    stop = min(int(prices.index.searchsorted(end, side="right")) + horizon, len(prices))
    examples = bar_examples(prices.iloc[:stop], symbol=bar_symbol(run), horizon=horizon,
                            train_end=fit_end, method=method)
    return [e for e in examples if start <= e.time <= end]


def signal_quality_frame(run_cfg: RunConfig, examples: list,
                         traded: pd.Series) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-bar scores of ``run_cfg``'s model on labelled ``examples`` and their quality metrics.

    ``score`` is the model's P(bull) − P(bear); ``signal`` is ``traded`` (the score column the
    strategy read, after its normalisation) on the same bars. Hit rates score ``signal``: a zero or
    missing signal is no signal, as in ``bt evaluate``.
    """
    from llmbt.signals_cache.finetune.encoding import render_example
    from llmbt.signals_cache.finetune.evaluate import classification_metrics, directional_metrics
    from llmbt.signals_cache.model.loading import load_tokenizer
    from llmbt.signals_cache.scoring.labels import LABELS
    from llmbt.signals_cache.scoring.prompts import template_for
    from llmbt.signals_cache.signals import score_prompts

    if not examples:
        raise LlmbtError("the test window has no labelled bar; use a longer --test window.")
    req = run_request(run_cfg, symbol=examples[0].symbol, progress=False)
    if req.schedule is not None:  # each example scored by the model of its bar's time
        examples, probs = scheduled_probs(examples, req)
    else:
        if run_cfg.scorer == "lm":  # a text scorer reads the bar's feature lines, not a prompt
            template, tokenizer = template_for("bars", run_cfg.prompt), load_tokenizer(req.spec)
            prompts = [render_example(template, tokenizer, e.text, e.symbol) for e in examples]
        else:
            prompts = [e.text for e in examples]
        probs = score_prompts(prompts, req).probs
    labels = [e.label for e in examples]
    forward = np.array([e.forward_return for e in examples])
    score = probs[:, LABELS.index("bullish")] - probs[:, LABELS.index("bearish")]
    index = pd.DatetimeIndex([e.time for e in examples])
    signal = traded.reindex(index).to_numpy(dtype=float)
    frame = pd.DataFrame({"score": score, "signal": signal, "confidence": probs.max(axis=1),
                          "label": labels, "predicted": [LABELS[i] for i in probs.argmax(axis=1)],
                          "forward_return": forward}, index=index)
    cls, direction = classification_metrics(labels, probs), directional_metrics(signal, forward)
    return frame, {"eval_f1": cls["macro_f1"], "eval_accuracy": cls["accuracy"],
                   "mean_confidence": cls["mean_confidence"], "ece": cls["ece"],
                   "hit_rate": direction["hit_rate"],
                   "profitable_ratio": direction.get("profitable_ratio")}


def scheduled_probs(examples: list, req: Any) -> tuple[list, np.ndarray]:
    """(the examples a model of ``req.schedule`` may score, their label probabilities), each
    rendered and scored by the model of its bar's time, as the backtest scored that bar."""
    from llmbt.signals_cache.finetune.encoding import render_example
    from llmbt.signals_cache.model.loading import load_chat_template
    from llmbt.signals_cache.scheduled import score_scheduled
    from llmbt.signals_cache.scoring.prompts import template_for
    from llmbt.signals_cache.signals import score_rendered

    template = template_for("bars", req.prompt)

    def render(spec: Any, rows: np.ndarray) -> list[str]:
        tokenizer = load_chat_template(spec)
        return [render_example(template, tokenizer, examples[i].text, examples[i].symbol)
                for i in rows]

    sched = score_scheduled([e.time for e in examples], render, req, template.version, "bar",
                            score=score_rendered)
    kept = [e for e, keep in zip(examples, sched.keep, strict=True) if keep]
    return kept, sched.kept().probs


def run_facts(run: RunResult) -> dict[str, Any]:
    """JSON facts of one backtest: its stats, scoring time, cache hits and scorer fingerprint
    (:func:`llmbt.experiments.trial_ids.scorer_fingerprint`)."""
    keys = ("sharpe", "total_return", "max_drawdown", "trades", "win_rate", "exposure", "bars",
            "rejected_orders")
    info = run.signal_info
    return {k: float(run.stats[k]) for k in keys} | {
        "seconds": round(run.seconds, 3), "ms_per_item": info.get("ms per scored item"),
        "cache_hit_rate": info.get("cache hit rate"), "scorer": scorer_fingerprint(run.config, info)}
