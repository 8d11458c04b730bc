"""README sentences that state what the code does, checked against the code: the universe
walk-forward's daily IC horizon and whether scoring applies a stored calibration temperature."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
from helpers import ROOT

from llmbt.experiments.walkforward import WalkForwardConfig
from llmbt.reports.signal import daily_ic, forward_returns
from llmbt.reports.universe_wf import universe_daily_ic
from llmbt.signals_cache.finetune.calibration import write_calibration
from llmbt.signals_cache.model.loading import ModelSpec, spec_temperature
from llmbt.signals_cache.scoring.temperature import scale_rows

README = " ".join(" ".join(p.read_text().split())  # the README and the docs site's pages
                  for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))])


def test_the_universe_walkforward_ic_is_at_the_horizon_as_the_readme_says():
    days = pd.date_range("2015-01-01", periods=40, freq="B", tz="UTC")
    opens = pd.DataFrame(np.exp(np.random.default_rng(1).normal(0, 0.02, (40, 6)).cumsum(axis=0)),
                         index=days, columns=list("ABCDEF"))
    scores = pd.DataFrame(np.random.default_rng(2).normal(size=(40, 6)), index=days, columns=opens.columns)
    rows = scores.rename_axis(index="time", columns="symbol").stack().rename("score").reset_index("symbol")
    horizon = {f.name: f.default for f in dataclasses.fields(WalkForwardConfig)}["horizon"]
    got = universe_daily_ic({"arm": rows}, opens, horizon)["arm"]
    at = {h: daily_ic(scores, fwd, 5) for h, fwd in forward_returns(opens, (1, horizon)).items()}
    assert horizon == 5 and got.equals(at[5]) and not got.equals(at[1])
    assert "Daily IC (one-day forward returns" not in README
    assert re.search(r"daily IC is of `--horizon`-bar forward returns, here 5 bars", README)


def test_scoring_applies_the_stored_temperature_as_the_readme_says(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    write_calibration(tmp_path, {"temperature": 2.0})
    spec = ModelSpec(adapter=str(tmp_path))
    assert spec_temperature(spec) == 2.0
    assert spec_temperature(dataclasses.replace(spec, calibrate=False)) is None
    probs = np.array([[0.7, 0.2, 0.1]])
    assert not np.allclose(scale_rows(probs, spec_temperature(spec)), probs)
    assert "scoring does not apply it yet" not in README
    assert "every later scoring with that folder applies it" in README
