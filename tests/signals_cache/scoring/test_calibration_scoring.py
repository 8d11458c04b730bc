"""The stored temperature where scores are produced (llmbt.signals_cache.scoring.temperature): a
``llmbt_calibration.json`` beside an adapter (or a text scorer's folder) scales the label
probabilities of the signal cache's scorers (backtest, universe, ``bt score``) before they are
cached, under a fingerprint that includes ``T``; without the file every fingerprint is the one
of before (golden strings from the code before temperatures were applied); ``--no-calibration``
(YAML ``calibrate: false``) opts out; ``bt evaluate`` shows raw and calibrated rows."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import save_adapter
from helpers_scoring import FixedArm

from llmbt.cli import cli
from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.signals_cache import signals
from llmbt.signals_cache.finetune.calibration import apply_temperature, write_calibration
from llmbt.signals_cache.model.loading import ModelSpec, model_fingerprint
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.scoring.labels import LABELS
from llmbt.signals_cache.scoring.temperature import scale_rows, stored_temperature
from llmbt.signals_cache.text_scorers import registry

#: model_fingerprint of the fixed-bytes base/adapter below, computed by the code before this
#: change (commit 65ea74f): a folder without llmbt_calibration.json must keep these keys.
GOLDEN = {("base", ""): "ecb8850b13b06f80", ("base", "bars-v1"): "4ec21cb546a3dcf8",
          ("adapter", ""): "5b5e074f73b1b0dd", ("adapter", "bars-v1"): "1e8682a029440068"}
PROMPTS = ["Acme beats estimates; bullish or bearish?", "Bolt sued over fraud", "Rates unchanged"]


pytestmark = pytest.mark.usefixtures("llmbt_home")


@pytest.fixture
def fixed(tmp_path: Path) -> tuple[Path, Path]:
    """A base folder and an adapter folder of fixed bytes (only hashed, never loaded)."""
    base, adapter = tmp_path / "base", tmp_path / "adapter"
    base.mkdir(), adapter.mkdir()
    (base / "model.safetensors").write_bytes(b"base weights")
    (base / "config.json").write_text("{}")
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"adapter weights")
    return base, adapter


def _spec(base: Path, adapter: Path | None = None, **kw) -> ModelSpec:
    return ModelSpec(base=str(base), adapter=adapter and str(adapter), device="cpu",
                     dtype="float32", precision="float32", **kw)


def test_scaling_keeps_the_label_the_mass_and_lowers_confidence_when_t_above_one() -> None:
    raw = np.array([[0.6, 0.2, 0.1], [0.05, 0.5, 0.25], [0.0, 0.0, 0.0]])  # masses 0.9, 0.8, 0
    hot, cold = scale_rows(raw, 2.5), scale_rows(raw, 0.5)
    np.testing.assert_allclose(hot.sum(axis=1), raw.sum(axis=1))
    assert (hot[:2].argmax(axis=1) == raw[:2].argmax(axis=1)).all() and not hot[2].any()
    shares = raw[:2] / raw[:2].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(hot[:2] / raw[:2].sum(axis=1, keepdims=True),
                               apply_temperature(shares, 2.5))
    assert (hot[:2].max(axis=1) < raw[:2].max(axis=1)).all()
    assert (cold[:2].max(axis=1) > raw[:2].max(axis=1)).all()
    assert (scale_rows(raw, None) == raw).all()


def test_no_calibration_file_keeps_todays_fingerprints(fixed) -> None:
    base, adapter = fixed
    for version in ("", "bars-v1"):
        assert model_fingerprint(_spec(base), version) == GOLDEN["base", version]
        assert model_fingerprint(_spec(base, adapter), version) == GOLDEN["adapter", version]
        assert model_fingerprint(_spec(base, adapter, calibrate=False), version) == \
            GOLDEN["adapter", version]


def test_a_stored_temperature_changes_the_fingerprint_stably(fixed) -> None:
    base, adapter = fixed
    write_calibration(adapter, {"temperature": 1.7, "fitted_on": "val.csv"})
    first = model_fingerprint(_spec(base, adapter), "")
    assert first != GOLDEN["adapter", ""]
    assert model_fingerprint(_spec(base, adapter), "") == first  # repeated loads: the same key
    assert model_fingerprint(_spec(base, adapter, calibrate=False), "") == GOLDEN["adapter", ""]
    write_calibration(adapter, {"temperature": 2.0})
    assert model_fingerprint(_spec(base, adapter), "") not in (first, GOLDEN["adapter", ""])
    assert stored_temperature(str(adapter)) == 2.0 and stored_temperature(str(adapter), False) is None


@pytest.mark.parametrize("content", ["{not json", '{"t": 2}', '{"temperature": -1}',
                                     '{"temperature": "hot"}', '{"temperature": true}'])
def test_a_damaged_calibration_file_is_one_clear_error(fixed, content: str) -> None:
    base, adapter = fixed
    (adapter / "llmbt_calibration.json").write_text(content)
    with pytest.raises(ConfigError, match="llmbt_calibration.json.*--no-calibration"):
        model_fingerprint(_spec(base, adapter), "")
    assert model_fingerprint(_spec(base, adapter, calibrate=False), "") == GOLDEN["adapter", ""]


def test_the_opt_out_is_validated_and_keeps_run_ids(fixed) -> None:
    assert RunConfig().run_id == "3337fcf67234" == RunConfig(calibrate=True).run_id  # as before
    assert RunConfig(calibrate=False).run_id != RunConfig().run_id
    assert RunConfig.from_dict({"calibrate": False}).calibrate is False
    with pytest.raises(ConfigError, match="YAML key 'calibrate' = 'no' must be true or false"):
        RunConfig.from_dict({"calibrate": "no"})
    with pytest.raises(ConfigError, match="calibrate = 1 must be true or false"):
        ModelSpec(calibrate=1)
    from llmbt.cli.base import build_config
    from llmbt.engine.signals import scorer_id

    flags = {"config_path": None, "params": ()}
    assert build_config(**flags).calibrate is True
    config = build_config(**flags, calibrate=False, adapter=str(fixed[1]))
    assert config.calibrate is False and scorer_id(config).spec.calibrate is False


def test_lm_scores_with_a_stored_temperature_through_the_cache_and_bt_score(tiny, tmp_path) -> None:
    from llmbt.signals_cache.provider import Item, ScoreStream

    adapter = save_adapter(tiny, tmp_path / "adapter", scale=0.05)
    write_calibration(adapter, {"temperature": 2.5})
    cache = str(tmp_path / "signals")

    def run(calibrate: bool):
        req = signals.SignalRequest(scorer=ScorerId(model=str(tiny), adapter=str(adapter),
                                                    calibrate=calibrate),
                                    mode="headlines", cache_dir=cache, progress=False)
        return signals.score_prompts(PROMPTS, req), req

    (raw, raw_req), (cal, cal_req) = run(False), run(True)
    assert raw.misses == cal.misses == 3  # two fingerprints: nothing shared in the cache
    np.testing.assert_allclose(cal.probs, apply_temperature(raw.probs, 2.5), atol=1e-9)
    np.testing.assert_allclose(cal.label_mass, raw.label_mass, rtol=1e-9)
    assert (cal.probs.argmax(axis=1) == raw.probs.argmax(axis=1)).all()
    assert (np.sign(cal.score) == np.sign(raw.score)).all()
    assert (cal.confidence < raw.confidence).all()  # T > 1 lowers the confidence
    assert run(True)[0].hits == 3 and run(False)[0].hits == 3  # each reloads its own entries
    stream_req = dataclasses.replace(cal_req, mode="prompts", cache_dir=str(tmp_path / "fresh"),
                                     scorer=dataclasses.replace(cal_req.scorer,
                                                                template="headlines-v1"))
    with ScoreStream(stream_req) as stream:
        out = stream.score([Item(p) for p in PROMPTS])
    assert [r["confidence"] for r in out] == pytest.approx(list(cal.confidence))
    assert out[0]["fingerprint"] == model_fingerprint(cal_req.spec, "") != \
        model_fingerprint(raw_req.spec, "")


class HalfSure:
    """A text scorer of fixed, somewhat confident rows."""

    name = "halfsure"

    def fingerprint(self) -> str:
        return "halfsure-v1"

    def score(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        return np.tile([0.7, 0.2, 0.1], (len(texts), 1))  # LABELS order: bullish first


def test_a_text_arm_folder_with_a_temperature_is_scaled_and_keyed_apart(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._KINDS, "halfsure", lambda model=None, path=None: HalfSure())
    folder = tmp_path / "head"
    folder.mkdir()

    def scored(calibrate: bool):
        req = signals.SignalRequest(scorer=ScorerId(kind="halfsure", adapter=str(folder),
                                                    calibrate=calibrate), mode="headlines",
                                    cache_dir=str(tmp_path / "signals"), progress=False)
        return signals.score_prompts(PROMPTS, req), signals.scorer_of(req)[1]

    before, plain_key = scored(True)
    assert plain_key == "arm:halfsure:halfsure-v1"  # no file: today's key
    write_calibration(folder, {"temperature": 3.0})
    cal, cal_key = scored(True)
    raw, raw_key = scored(False)
    assert raw_key == plain_key != cal_key and scored(True)[1] == cal_key
    assert cal.misses == 3 and raw.hits == 3  # the raw rows were cached before the file existed
    np.testing.assert_allclose(raw.probs, before.probs)
    np.testing.assert_allclose(cal.probs, apply_temperature(before.probs, 3.0))
    assert (cal.confidence < raw.confidence).all()
    assert (cal.probs.argmax(1) == LABELS.index("bullish")).all()


def _evaluate(tmp_path, monkeypatch, labels, probs, *extra: str):
    from llmbt.signals_cache.finetune import evaluate

    table = {f"item {i}": p for i, p in enumerate(probs)}
    monkeypatch.setattr(evaluate, "LMArm", lambda *a, **k: FixedArm(table))
    rows = [{"label": y, "text": f"item {i}"} for i, y in enumerate(labels)][:1000]
    pd.DataFrame(rows).to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(cli, ["evaluate", "--data", str(tmp_path / "test.csv"), "--adapter",
                                   str(tmp_path / "adapter"), "--json", str(out), *extra])
    return res, json.loads(out.read_text()) if res.exit_code == 0 else None


def test_bt_evaluate_shows_raw_and_calibrated_rows(tmp_path, monkeypatch, overconfident) -> None:  # noqa: F811
    labels, probs = overconfident
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    write_calibration(adapter, {"temperature": 3.0})
    res, result = _evaluate(tmp_path, monkeypatch, labels, probs)
    assert res.exit_code == 0, res.output
    cal = result["adapter"]["calibration"]
    assert cal["temperature"] == 3.0 and cal["source"] == "stored"
    assert cal["ece_before"] == result["adapter"]["ece"] and cal["ece_after"] < cal["ece_before"] / 3
    assert cal["mean_confidence_after"] < result["adapter"]["mean_confidence"]
    assert "calibration" not in result["base"] and "calibrated: temperature" in res.output
    res, result = _evaluate(tmp_path, monkeypatch, labels, probs, "--no-calibration")
    assert res.exit_code == 0 and "calibration" not in result["adapter"], res.output
    res, _ = _evaluate(tmp_path, monkeypatch, labels, probs, "--no-calibration", "--calibrate-on",
                       str(tmp_path / "test.csv"))
    assert res.exit_code != 0 and "give one of the two" in res.output
