"""Temperature scaling (llmbt.signals_cache.finetune.calibration): it recovers the temperature of
over-confident probabilities and lowers their ECE, leaves the arg-max alone, and its record beside
an adapter leaves the adapter's digest (the signal-cache key) unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_scoring import FixedArm

from llmbt.errors import LlmbtError
from llmbt.signals_cache.finetune.calibration import (
    apply_temperature,
    fit_temperature,
    read_temperature,
    write_calibration,
)
from llmbt.signals_cache.finetune.evaluate import classification_metrics, evaluate_arm


def test_temperature_scaling_finds_t_and_lowers_ece(overconfident):
    labels, probs = overconfident
    val, test = slice(0, 2000), slice(2000, 4000)
    t = fit_temperature(probs[val], labels[val])
    assert t == pytest.approx(3.0, rel=0.1)
    before = classification_metrics(labels[test], probs[test])
    after = classification_metrics(labels[test], apply_temperature(probs[test], t))
    assert before["ece"] > 0.15 and after["ece"] < before["ece"] / 3
    assert after["accuracy"] == before["accuracy"] and after["brier"] < before["brier"]


def test_calibrated_probabilities_keep_their_temperature_one():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs)
    hot = apply_temperature(probs, 10.0)
    assert (hot.argmax(axis=1) == probs.argmax(axis=1)).all() and hot.max() < 0.4
    with pytest.raises(LlmbtError, match="must be positive"):
        apply_temperature(probs, 0.0)
    with pytest.raises(LlmbtError, match="not one of"):
        fit_temperature(probs, ["bullish", "sideways"])


def test_bt_evaluate_reports_ece_before_and_after(overconfident):
    labels, probs = overconfident
    examples = [(f"item {i}", y) for i, y in enumerate(labels)]
    arm = FixedArm({t: p for (t, _), p in zip(examples, probs, strict=True)})
    result = evaluate_arm(examples[2000:], arm, val_examples=examples[:2000])
    cal = result["calibration"]
    assert cal["ece_before"] == result["ece"] and cal["ece_after"] < cal["ece_before"] / 3
    assert cal["val_nll_after"] < cal["val_nll_before"] and cal["n_val"] == 2000
    assert cal["temperature"] == pytest.approx(3.0, rel=0.1)


def test_the_record_beside_an_adapter_keeps_its_digest(tmp_path):
    from llmbt.signals_cache.model.adapters import adapter_digest

    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    digest = adapter_digest(str(tmp_path))
    assert read_temperature(tmp_path) is None
    write_calibration(tmp_path, {"temperature": 1.7, "fitted_on": "val.jsonl"})
    assert read_temperature(tmp_path) == 1.7 and adapter_digest(str(tmp_path)) == digest


def test_bt_evaluate_saves_the_adapter_temperature(tmp_path, monkeypatch, overconfident):
    """--adapter with --calibrate-on writes llmbt_calibration.json (models stubbed by FixedArm)."""
    import json

    import pandas as pd
    from click.testing import CliRunner

    from llmbt.cli import cli
    from llmbt.signals_cache.finetune import evaluate

    labels, probs = overconfident
    table = {f"item {i}": p for i, p in enumerate(probs)}
    monkeypatch.setattr(evaluate, "LMArm", lambda *a, **k: FixedArm(table))
    for name, part in (("val", slice(0, 2000)), ("test", slice(2000, 4000))):
        rows = [{"label": y, "text": f"item {i}"} for i, y in enumerate(labels)][part]
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    res = CliRunner().invoke(cli, ["evaluate", "--data", str(tmp_path / "test.csv"), "--adapter",
                                   str(adapter), "--calibrate-on", str(tmp_path / "val.csv")])
    assert res.exit_code == 0, res.output
    saved = json.loads((adapter / "llmbt_calibration.json").read_text())
    assert saved["temperature"] == pytest.approx(3.0, rel=0.1) == read_temperature(adapter)
    assert saved["fitted_on"].endswith("val.csv") and saved["ece_after"] < saved["ece_before"]
