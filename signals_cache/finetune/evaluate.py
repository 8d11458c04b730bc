"""Evaluation of label probabilities: classification metrics (pure numpy), model evaluation on
labelled examples, and directional metrics of signed scores against forward returns."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmbt.errors import LlmbtError
from llmbt.signals_cache.scoring.labels import LABEL_ALIASES, LABELS

#: Bins of the expected calibration error.
ECE_BINS = 10


def _canonical(label: object, labels: Sequence[str]) -> str:
    key = str(label).strip().lower()
    if key in labels:
        return key
    if tuple(labels) == LABELS and key in LABEL_ALIASES:
        return LABEL_ALIASES[key]
    raise LlmbtError(f"label {label!r} is not one of {', '.join(labels)}.")


def classification_metrics(
    y_true: Sequence[str], probs: np.ndarray, labels: Sequence[str] = LABELS
) -> dict[str, Any]:
    """Metrics of probabilities ``probs`` (n × len(labels), columns in ``labels`` order) against
    true labels; the prediction is the arg-max column.

    Returns accuracy, macro_f1 (mean over the labels that occur in y_true or the predictions,
    as scikit-learn does), weighted_f1 (weighted by support), per_class precision/recall/f1/
    support, confusion (rows = true, columns = predicted, in ``labels`` order), mean_confidence
    (mean top probability), ece (10 equal-width bins of the top probability) and brier (mean over
    rows of the squared distance to the one-hot truth, summed over classes; 0 is perfect, 2 worst).

    Raises:
        LlmbtError: lengths or shapes differ, there are no rows, or a label is unknown.
    """
    labels = tuple(str(x).strip().lower() for x in labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(labels) or probs.shape[0] != len(y_true):
        raise LlmbtError(f"probs shape {probs.shape} must be ({len(y_true)}, {len(labels)}).")
    if probs.shape[0] == 0:
        raise LlmbtError("no examples to evaluate.")
    if not np.isfinite(probs).all():
        raise LlmbtError("probs contain NaN or infinite values.")
    k = len(labels)
    truth = np.array([labels.index(_canonical(y, labels)) for y in y_true])
    pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    n = len(truth)
    confidence = probs.max(axis=1)
    correct = (pred == truth).astype(np.float64)
    onehot = np.eye(k)[truth]
    return {
        "n": n,
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": float((f1 * support).sum() / n),
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": confusion.tolist(),
        "mean_confidence": float(confidence.mean()),
        "ece": expected_calibration_error(confidence, correct),
        "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
    }


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Σ_b |B|/n · |accuracy(B) − mean confidence(B)| over equal-width bins (0, 1/bins], …"""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(index):
        mask = index == b
        total += mask.sum() / len(confidence) * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def directional_metrics(scores: np.ndarray, forward_returns: np.ndarray) -> dict[str, Any]:
    """How signed scores (positive = long) line up with forward returns.

    Signals are the rows with a non-zero score and a finite return. ``hit_rate``: share of the
    signals whose sign matches the return's sign, over signals with a non-zero return;
    ``profitable_ratio``: share of all signals with score·return > 0 (a zero return counts as
    unprofitable); ``mean_signed_return``: mean of sign(score)·return. Ratios are None without
    signals.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    returns = np.asarray(forward_returns, dtype=np.float64).ravel()
    if scores.shape != returns.shape:
        raise LlmbtError(f"scores ({scores.size}) and forward_returns ({returns.size}) differ in "
                         "length.")
    signal = np.isfinite(scores) & (scores != 0) & np.isfinite(returns)
    directional = signal & (returns != 0)
    s, r = scores[signal], returns[signal]
    return {
        "n_signals": int(signal.sum()),
        "hit_rate": float((np.sign(scores[directional]) == np.sign(returns[directional])).mean())
        if directional.any() else None,
        "profitable_ratio": float((s * r > 0).mean()) if s.size else None,
        "mean_signed_return": float((np.sign(s) * r).mean()) if s.size else None,
    }


class LMArm:
    """The causal-LM label scorer of ``spec`` on prompts rendered with ``template``; the model is
    loaded on the first :meth:`probs` call and kept (validation and test share it)."""

    def __init__(self, spec: Any, template: str = "headlines-v1", batch_size: int = 16) -> None:
        self.spec, self.template, self.batch_size, self._scorer = spec, template, batch_size, None

    def probs(self, examples: Sequence[Any]) -> tuple[np.ndarray, tuple[str, ...], dict[str, Any]]:
        """(probabilities normalised over the labels, their column labels, facts: items/s,
        ms/item without the model load, label mass before normalisation) of ``examples``."""
        from llmbt.signals_cache.finetune.encoding import example_fields, render_example
        from llmbt.signals_cache.scoring.prompts import get_template

        if self._scorer is None:
            from llmbt.signals_cache.model.loading import load_model
            from llmbt.signals_cache.scoring.scorer import LabelScorer

            self._scorer = LabelScorer(load_model(self.spec))
        tmpl, tokenizer = get_template(self.template), self._scorer.loaded.tokenizer
        prompts = [render_example(tmpl, tokenizer, text, sym)
                   for text, _, sym in map(example_fields, examples)]
        probs = self._scorer.score(prompts, batch_size=self.batch_size)
        rate, mass = self._scorer.last_items_per_s, self._scorer.last_label_mass
        return probs, tuple(self._scorer.labels), {
            "items_per_s": rate, "ms_per_item": 1000.0 / rate if rate else float("nan"),
            "mean_label_mass": float(mass.mean()), "min_label_mass": float(mass.min())}


class TextArm:
    """A registered text scorer (:mod:`llmbt.signals_cache.text_scorers`) on the examples' raw texts."""

    def __init__(self, scorer: Any, batch_size: int = 16) -> None:
        self.scorer, self.batch_size, self._warm = scorer, batch_size, False

    def probs(self, examples: Sequence[Any]) -> tuple[np.ndarray, tuple[str, ...], dict[str, Any]]:
        """As :meth:`LMArm.probs`. The first text is scored once untimed beforehand, so one-time
        set-up (a dictionary, a model load) is not counted in ms/item, as the LM arm's load is not."""
        from llmbt.signals_cache.finetune.encoding import example_fields

        texts = [text for text, _, _ in map(example_fields, examples)]
        if not self._warm and texts:
            self.scorer.score(texts[:1], batch_size=self.batch_size)
            self._warm = True
        started = time.perf_counter()
        probs = np.asarray(self.scorer.score(texts, batch_size=self.batch_size), dtype=np.float64)
        seconds = max(time.perf_counter() - started, 1e-9)
        return probs, LABELS, {"items_per_s": len(texts) / seconds,
                               "ms_per_item": 1000.0 * seconds / len(texts)}


def evaluation_arm(scorer: Any, batch_size: int = 16) -> LMArm | TextArm:
    """What scores labelled sentences for the :class:`~llmbt.signals_cache.scorer_id.ScorerId`
    ``scorer``: the model on its template's prompts, or its text scorer on the raw texts."""
    if scorer.is_lm:
        return LMArm(scorer.spec, scorer.template or "headlines-v1", batch_size)
    return TextArm(scorer.text_scorer(), batch_size)


def evaluate_arm(examples: Sequence[Any], arm: LMArm | TextArm, *,
                 val_examples: Sequence[Any] | None = None,
                 temperature: float | None = None) -> dict[str, Any]:
    """Score ``examples`` (objects with ``.text``/``.label``/``.symbol`` or ``(text, label)``
    pairs) with ``arm`` and measure the probabilities against the labels.

    Returns :func:`classification_metrics` plus the arm's facts (``items_per_s``,
    ``ms_per_item``; the LM arm's ``mean_label_mass``/``min_label_mass``) and ``n``; when every
    example has a ``forward_return``, also ``directional`` (:func:`directional_metrics` of
    P(bullish) − P(bearish)) and ``targets``; with ``val_examples``, ``calibration``
    (:func:`calibration_report`: a temperature fitted on them, ECE before/after on ``examples``);
    else, with a stored ``temperature`` (the one scoring applies), ``calibration`` of it
    (:func:`stored_calibration`). The top-level metrics are always of the raw probabilities.
    """
    from llmbt.signals_cache.finetune.encoding import example_fields

    examples = list(examples)
    if not examples:
        raise LlmbtError("no examples to evaluate.")
    probs, labels, facts = arm.probs(examples)
    truth = [label for _, label, _ in map(example_fields, examples)]
    result = classification_metrics(truth, probs, labels) | facts | {"n": len(examples)}
    returns = [getattr(ex, "forward_return", None) for ex in examples]
    if all(r is not None for r in returns):
        bull, bear = labels.index("bullish"), labels.index("bearish")
        result["directional"] = directional_metrics(probs[:, bull] - probs[:, bear],
                                                    np.asarray(returns, dtype=np.float64))
        result["targets"] = seed_targets(result)
    if val_examples is not None:
        result["calibration"] = calibration_report(arm, list(val_examples), truth, probs, labels)
    elif temperature is not None:
        result["calibration"] = stored_calibration(truth, probs, labels, temperature)
    return result


def stored_calibration(truth: list[str], probs: np.ndarray, labels: Sequence[str],
                       temperature: float) -> dict[str, Any]:
    """What the stored ``temperature`` does to the test ``probs``: ``temperature``, ``source``
    (``stored``) and ECE, Brier and mean confidence before/after (as :func:`calibration_report`)."""
    from llmbt.signals_cache.finetune.calibration import apply_temperature

    before = classification_metrics(truth, probs, labels)
    after = classification_metrics(truth, apply_temperature(probs, temperature), labels)
    return {"temperature": float(temperature), "source": "stored",
            **{f"{key}_{when}": m[key] for key in ("ece", "brier", "mean_confidence")
               for when, m in (("before", before), ("after", after))}}


def calibration_report(arm: LMArm | TextArm, val_examples: list, truth: list[str],
                       probs: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Temperature scaling of ``arm`` fitted on ``val_examples``, applied to the test ``probs``:
    ``temperature``, ``n_val``, validation NLL before/after, and the test set's ECE, Brier and
    mean confidence before/after (accuracy and F1 do not change)."""
    from llmbt.signals_cache.finetune.calibration import apply_temperature, fit_temperature, nll
    from llmbt.signals_cache.finetune.encoding import example_fields

    if not val_examples:
        raise LlmbtError("the calibration file has no examples; pass a labelled validation file.")
    val_probs, _, _ = arm.probs(val_examples)
    val_truth = [label for _, label, _ in map(example_fields, val_examples)]
    temperature = fit_temperature(val_probs, val_truth, labels)
    idx = np.array([list(labels).index(y) for y in val_truth])
    before = classification_metrics(truth, probs, labels)
    after = classification_metrics(truth, apply_temperature(probs, temperature), labels)
    return {"temperature": temperature, "source": "fitted", "n_val": len(val_examples),
            "val_nll_before": nll(val_probs, idx),
            "val_nll_after": nll(apply_temperature(val_probs, temperature), idx),
            **{f"{key}_{when}": m[key] for key in ("ece", "brier", "mean_confidence")
               for when, m in (("before", before), ("after", after))}}


def evaluate_model(
    examples: Sequence[Any], spec: Any, *, template: str = "headlines-v1", batch_size: int = 16
) -> dict[str, Any]:
    """:func:`evaluate_arm` of the causal-LM label scorer
    (:class:`~llmbt.signals_cache.scoring.scorer.LabelScorer`) on the model of ``spec``."""
    return evaluate_arm(examples, LMArm(spec, template=template, batch_size=batch_size))


#: The seed's targets for dated examples: (metric path, above this, or within [low, high]).
SEED_TARGETS: dict[str, tuple[tuple[str, ...], float, float | None]] = {
    "accuracy > 60 %": (("accuracy",), 0.60, None),
    "profitable signals > 55 %": (("directional", "profitable_ratio"), 0.55, None),
    "mean confidence 60-80 %": (("mean_confidence",), 0.60, 0.80),
}


def seed_targets(result: dict[str, Any]) -> dict[str, bool | None]:
    """Whether ``result`` meets each of :data:`SEED_TARGETS` (None when the metric is missing)."""
    met: dict[str, bool | None] = {}
    for name, (path, low, high) in SEED_TARGETS.items():
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            met[name] = None
        else:
            met[name] = bool(value > low if high is None else low <= value <= high)
    return met
