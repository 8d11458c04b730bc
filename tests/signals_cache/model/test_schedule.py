"""Point-in-time model schedules: parsing, segment boundaries (no item is ever scored by a model
whose cutoff is on or after its day), per-segment cache keys, walk-forward fold → model mapping,
``bt score`` by timestamp, and GPT-2-style bases (no chat template, ``Conv1D`` LoRA targets)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import ROOT, save_tiny, save_tiny_gpt2
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbt.engine.config import RunConfig
from llmbt.errors import ConfigError
from llmbt.experiments.arms import Arm, arm_config, parse_arm
from llmbt.experiments.splitters import WalkForward
from llmbt.signals_cache.model.schedule import ModelSchedule, Segment, load_schedule

TODAY = dt.date(2026, 12, 6)


def _fake_model(folder: Path) -> Path:
    """A folder that passes the schedule's load check (config and weights present)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0")
    return folder


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for name in ("y2011", "y2012", "y2013"):
        _fake_model(tmp_path / name)
    return tmp_path


def _write(folder: Path, text: str, name: str = "schedule.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


YAML = """models:
  - {cutoff: 2011-12-31, model: y2011}
  - {cutoff: 2012-12-31, model: y2012}
  - {cutoff: 2013-12-31, model: y2013}
"""


# ---------------------------------------------------------------- the file


def test_yaml_and_csv_give_the_same_schedule_with_paths_read_beside_the_file(models: Path) -> None:
    from_yaml = load_schedule(_write(models, YAML), today=TODAY)
    csv = "cutoff,model,adapter\n2011-12-31,y2011,\n2012-12-31,y2012,\n2013-12-31,y2013,\n"
    from_csv = load_schedule(_write(models, csv, "schedule.csv"), today=TODAY)
    assert [s.model for s in from_yaml.segments] == [str(models / n) for n in ("y2011", "y2012", "y2013")]
    assert [(s.cutoff, s.model, s.adapter) for s in from_yaml.segments] == \
           [(s.cutoff, s.model, s.adapter) for s in from_csv.segments]
    assert from_yaml.segments[1] == Segment(dt.date(2012, 12, 31), str(models / "y2012"), None, 2)


@pytest.mark.parametrize(("text", "expected"), [
    ("- {cutoff: 2012-12-31, model: y2012}\n- {cutoff: 2011-12-31, model: y2011}\n",
     "row 2: cutoff 2011-12-31 comes before row 1's 2012-12-31"),
    ("- {cutoff: 2012-12-31, model: y2012}\n- {cutoff: 2012-12-31, model: y2013}\n",
     "row 2: cutoff 2012-12-31 repeats row 1's"),
    ("- {cutoff: 2012-12-31, model: y2012}\n- {cutoff: 2027-06-30, model: y2013}\n",
     "row 2: cutoff 2027-06-30 is in the future (today is 2026-12-06)"),
    ("- {cutoff: 2012-12-31, model: y2012}\n- {cutoff: 2013-12-31, model: missing}\n",
     "row 2 (missing): cannot be loaded"),
    ("- {cutoff: 2012-12-31, model: ./nowhere}\n", "row 1 (./nowhere): cannot be loaded"),
    ("- {cutoff: last year, model: y2012}\n", "row 1: cutoff 'last year' is not a date"),
    ("- {cutoff: 2012-12-31, model: y2012, lora: x}\n", "row 1: unknown column(s) ['lora']"),
    ("- {cutoff: 2012-12-31}\n", "row 1: the model is empty"),
    ("[]\n", "no rows"),
])
def test_bad_schedules_fail_in_one_line_naming_the_row(models: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_schedule(_write(models, text), today=TODAY)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_model_folder_without_weights_is_refused_naming_its_row(models: Path) -> None:
    (models / "y2013" / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"row 3 \(.*y2013\): cannot be loaded: .*no \.safetensors"):
        load_schedule(_write(models, YAML), today=TODAY)


def test_the_shipped_timagpt2_schedule_is_valid_offline() -> None:
    path = ROOT / "examples" / "point_in_time" / "timagpt2.yaml"
    schedule = load_schedule(path, today=TODAY)  # hub ids: checked when they load, not here
    assert [s.cutoff.year for s in schedule.segments] == list(range(2011, 2023))
    assert schedule.segments[3].model == "Ti-Ma/TiMaGPT2-2014"


def test_a_missing_schedule_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--model-schedule .* not found"):
        load_schedule(tmp_path / "nope.yaml")


# ---------------------------------------------------------------- segment boundaries


def _schedule(cutoffs: list[dt.date], gap: int = 0, before_first: str = "refuse") -> ModelSchedule:
    segments = tuple(Segment(c, f"m{i}", None, i + 1) for i, c in enumerate(cutoffs))
    return ModelSchedule("s.yaml", segments, gap, before_first)


DAYS = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2020, 12, 31))


@settings(max_examples=200, deadline=None)
@given(cutoffs=st.lists(DAYS, min_size=1, max_size=6, unique=True),
       stamps=st.lists(st.datetimes(min_value=dt.datetime(1999, 6, 1),
                                    max_value=dt.datetime(2021, 6, 1)), min_size=1, max_size=30),
       gap=st.integers(0, 10))
def test_no_item_is_scored_by_a_model_whose_cutoff_is_on_or_after_its_day(cutoffs, stamps, gap):
    schedule = _schedule(sorted(cutoffs), gap)
    times = pd.DatetimeIndex(stamps).tz_localize("UTC")
    segment = schedule.assign(times)
    for t, k in zip(times, segment, strict=True):
        allowed = [i for i, c in enumerate(schedule.segments)
                   if c.cutoff < t.date() - dt.timedelta(days=gap)]
        assert k == (allowed[-1] if allowed else -1)  # the latest model strictly before, or none
        if k >= 0:
            assert schedule.segments[k].cutoff < t.date()


def test_the_cutoff_day_itself_belongs_to_the_earlier_model() -> None:
    schedule = _schedule([dt.date(2012, 12, 31), dt.date(2013, 6, 30)])
    times = ["2012-12-31 23:59", "2013-01-01 00:00", "2013-06-30 12:00", "2013-07-01 09:30"]
    assert schedule.assign(pd.to_datetime(times).tz_localize("UTC")).tolist() == [-1, 0, 0, 1]
    gapped = _schedule([dt.date(2012, 12, 31)], gap=5)
    assert gapped.assign(pd.to_datetime(["2013-01-05", "2013-01-06"]).tz_localize("UTC")).tolist() \
        == [-1, 0]


def test_items_before_the_first_cutoff_are_refused_naming_the_date_or_skipped() -> None:
    times = pd.to_datetime(["2012-06-01", "2012-12-31", "2013-02-01"]).tz_localize("UTC")
    with pytest.raises(ConfigError, match=r"2 bar\(s\), the first on 2012-06-01, .*cutoff "
                                          r"2012-12-31, so from 2013-01-01.*--before-first skip"):
        _schedule([dt.date(2012, 12, 31)]).segments_of(times, "bar")
    skip = _schedule([dt.date(2012, 12, 31)], before_first="skip")
    assert skip.segments_of(times).tolist() == [-1, -1, 0]


# ---------------------------------------------------------------- configs and arms


def test_run_config_refuses_what_a_schedule_cannot_take(models: Path) -> None:
    path = str(_write(models, YAML))
    with pytest.raises(ConfigError, match="--adapter .* cannot go with --model-schedule"):
        RunConfig(model_schedule=path, adapter="x")
    with pytest.raises(ConfigError, match="--cutoff-gap .* shape --model-schedule"):
        RunConfig(cutoff_gap=3)
    with pytest.raises(ConfigError, match="--before-first .* is not one of refuse, skip"):
        RunConfig(model_schedule=path, before_first="drop")
    assert RunConfig().run_id == RunConfig(cutoff_gap=0, before_first="refuse").run_id


def test_a_schedule_arm_replaces_the_model_and_a_model_arm_drops_the_run_schedule() -> None:
    arm = parse_arm("name=pit,schedule=s.yaml")
    assert arm == Arm("pit", schedule="s.yaml")
    with pytest.raises(ConfigError, match="schedule= chooses each item's model"):
        parse_arm("name=pit,schedule=s.yaml,model=gpt2")
    run = RunConfig(model_schedule="run.yaml")  # RunConfig does not read the file
    assert arm_config(run, Arm("pit", schedule="s.yaml")).model_schedule == "s.yaml"
    assert arm_config(run, Arm("base")).model_schedule == "run.yaml"  # names no model: inherits
    assert arm_config(run, Arm("modern", model="smollm2-135m")).model_schedule is None
    lexicon = arm_config(run, Arm("lex", kind="lexicon"))  # a text scorer drops the run's schedule
    assert lexicon.scorer == "lexicon" and lexicon.model_schedule is None


# ---------------------------------------------------------------- walk-forward folds


def test_each_fold_takes_the_model_whose_cutoff_precedes_its_test_window(models: Path, goog) -> None:
    from llmbt.experiments.walkforward import WalkForwardConfig, shift_fold
    from llmbt.experiments.wf_schedule import fold_model, scheduled_folds

    path = str(_write(models, YAML))
    run = RunConfig(strategy="llm_sentiment", model_schedule=path, before_first="skip")
    cfg = WalkForwardConfig(run=run, splitter=WalkForward(train=252, test=126, embargo=5))
    index = goog.index[goog.index >= pd.Timestamp("2010-06-01", tz="UTC")]
    folds = [shift_fold(f, 0, index) for f in cfg.splitter.folds(index)]
    said: list[str] = []
    kept = scheduled_folds(cfg, folds, said.append)
    assert len(kept) < len(folds) and said and "skipped" in said[0]
    for fold in kept:
        fold_cfg, facts = fold_model(cfg, fold)
        cutoff = dt.date.fromisoformat(facts["cutoff"])
        assert cutoff < fold.test_start.date()
        later = [s.cutoff for s in load_schedule(path).segments if s.cutoff > cutoff]
        assert not later or later[0] >= fold.test_start.date()  # the latest one before it
        assert fold_cfg.run.model == facts["model"] and fold_cfg.run.model_schedule is None
        assert fold_cfg.run.model_cutoff == facts["cutoff"]
    refuse = WalkForwardConfig(run=run.replace(before_first="refuse"), splitter=cfg.splitter)
    with pytest.raises(ConfigError, match="fold test window"):
        scheduled_folds(refuse, folds, said.append)


def test_walk_forward_refuses_chained_adapters_and_schedule_adapters(models: Path) -> None:
    from llmbt.experiments.walkforward import WalkForwardConfig

    run = RunConfig(strategy="llm_sentiment", model_schedule=str(_write(models, YAML)))
    with pytest.raises(ConfigError, match="--warm-start .* may change the base model"):
        WalkForwardConfig(run=run, warm_start=True)
    adapter = models / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(b"0")
    text = YAML + "  - {cutoff: 2014-12-31, model: y2013, adapter: lora}\n"
    with pytest.raises(ConfigError, match="row 4 names adapter .* trains its own"):
        WalkForwardConfig(run=run.replace(model_schedule=str(_write(models, text, "s2.yaml"))))


# ---------------------------------------------------------------- tiny real models


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("pit")
    save_tiny_gpt2(root / "gpt2-2012", tokenizer_dir, seed=1)
    save_tiny_gpt2(root / "gpt2-2013", tokenizer_dir, seed=2)
    save_tiny(root / "llama-2013h2", tokenizer_dir, seed=3)
    _write(root, "models:\n  - {cutoff: 2012-03-31, model: gpt2-2012}\n"
                 "  - {cutoff: 2012-08-31, model: gpt2-2013}\n"
                 "  - {cutoff: 2012-12-31, model: llama-2013h2}\n")
    return root


def _bars_request(root: Path, spec=None, schedule=None, cache: Path | None = None):
    from llmbt.signals_cache.scorer_id import ScorerId
    from llmbt.signals_cache.signals import SignalRequest

    return SignalRequest(scorer=spec or ScorerId(), schedule=schedule, cache_dir=str(cache),
                         progress=False, batch_size=16,
                         score_from=pd.Timestamp("2012-06-01", tz="UTC"))


def test_a_gpt2_base_without_chat_template_scores_through_the_completion_template(
        tiny_models: Path, llmbt_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmbt.signals_cache.model import loading
    from llmbt.signals_cache.model.chat_template import COMPLETION_VERSION, prompt_format
    from llmbt.signals_cache.scoring.prompts import get_template, render

    gpt2, llama = tiny_models / "gpt2-2012", tiny_models / "llama-2013h2"
    assert prompt_format(str(gpt2)) == COMPLETION_VERSION and prompt_format(str(llama)) is None
    spec = loading.ModelSpec(base=str(gpt2))
    loaded = loading.load_model(spec)
    template = get_template("headlines-v2")
    text = render(template, loaded.tokenizer, headline="Profit soars")
    assert text == f"{template.system}\n\nHeadline: Profit soars\n\nAnswer:"
    saved = loading.load_chat_template(spec)  # the JSON kept for cached runs renders the same
    assert render(template, saved, headline="Profit soars") == text
    keyed = loading.model_fingerprint(spec, "")
    monkeypatch.setattr(loading, "prompt_format", lambda source: None)
    assert loading.model_fingerprint(spec, "") != keyed  # the template version is in the key


def test_a_scheduled_run_scores_each_segment_as_its_own_model_and_reruns_from_cache(
        tiny_models: Path, goog, llmbt_home: Path) -> None:
    from llmbt.signals_cache.scorer_id import ScorerId
    from llmbt.signals_cache.signals import compute_signals

    prices = goog.loc["2012-01-01":"2013-03-01"]
    schedule = load_schedule(tiny_models / "schedule.yaml")
    req = _bars_request(tiny_models, schedule=schedule, cache=llmbt_home / "signals")
    frame, info = compute_signals(prices, req)
    segments = info["schedule"]
    assert [s["items"] > 0 for s in segments] == [True, True, True]
    assert len({s["fingerprint"] for s in segments}) == 3
    assert info["hindsight"].startswith("none possible")
    alone = {seg.row: compute_signals(prices, _bars_request(  # batches differ: float noise only
        tiny_models, spec=ScorerId(model=seg.model), cache=llmbt_home / "solo"))[0]["score"]
        for seg in schedule.segments}
    for k, seg in enumerate(schedule.segments):  # each segment's bars: that model's scores only
        days = [d for d in frame.index[frame["score"].notna()] if schedule.assign([d])[0] == k]
        for row, scores in alone.items():
            same = np.allclose(frame.loc[days, "score"], scores[days], rtol=1e-3, atol=0)
            assert days and same == (row == seg.row)
    again, info2 = compute_signals(prices, req)
    assert info2["model calls"].startswith("0 (0 prompts scored")
    kept = info2["signals"].split("(")[1].split(" scored")[0]
    assert info2["scoring"].startswith(f"all {kept} prompts from the cache (")
    assert info2["scoring"].endswith("s), no model call") and "ms per scored item" not in info2
    assert "ms per scored item" in info and info["scoring"].endswith(" s")
    assert again["score"].equals(frame["score"])


def test_universe_headlines_are_split_by_their_own_time(tiny_models: Path, goog,
                                                         llmbt_home: Path) -> None:
    import dataclasses

    from llmbt.signals_cache.signals import SignalRequest
    from llmbt.signals_cache.universe import universe_signals

    prices = {"AAA": goog.loc["2012-01-01":"2013-03-01"], "BBB": goog.loc["2012-01-01":"2013-03-01"]}
    news = pd.DataFrame({"timestamp": pd.to_datetime(["2012-03-02 14:00", "2012-06-04 15:00",
                                                      "2012-10-01 13:00", "2013-02-01 16:00"], utc=True),
                         "symbol": ["AAA", "BBB", "AAA", "BBB"],
                         "headline": ["Profit soars", "Profit soars", "Fraud probe", "Guidance cut"]})
    schedule = load_schedule(tiny_models / "schedule.yaml")
    req = SignalRequest(mode="headlines", schedule=schedule, progress=False,
                        cache_dir=str(llmbt_home / "signals"))
    with pytest.raises(ConfigError, match="1 headline\\(s\\), the first on 2012-03-02"):
        universe_signals(prices, news, req)
    skip = dataclasses.replace(req, schedule=dataclasses.replace(schedule, before_first="skip"))
    panels, info = universe_signals(prices, news, skip)
    assert [s["items"] for s in info["schedule"]] == [1, 1, 1]
    assert "1 headlines before the first cutoff skipped" in info["model schedule"]
    assert panels["score"]["AAA"].notna().any() and panels["score"]["BBB"].notna().any()


def test_bt_score_picks_each_items_model_by_its_timestamp(tiny_models: Path, tmp_path: Path,
                                                          llmbt_home: Path) -> None:
    from llmbt.cli import cli
    from llmbt.signals_cache.model.loading import ModelSpec, model_fingerprint

    items = tmp_path / "items.jsonl"
    rows = [("AAA", "2012-03-01T10:00:00Z"), ("AAA", "2012-06-04"), ("BBB", "2012-10-01T15:30:00Z"),
            ("BBB", "2013-01-02T09:00:00-04:00")]
    items.write_text("".join(json.dumps({"symbol": s, "timestamp": t, "headline": "Profit soars"})
                             + "\n" for s, t in rows))
    args = ["score", str(items), "--model-schedule", str(tiny_models / "schedule.yaml")]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code != 0 and "first on 2012-03-01" in refused.output
    done = CliRunner().invoke(cli, [*args, "--before-first", "skip"])
    assert done.exit_code == 0, done.output
    records = [json.loads(line) for line in done.output.splitlines() if line.startswith("{")]
    assert records[0]["score"] is None and records[0]["skipped"]
    names = [Path(r["model"]).name for r in records[1:]]
    assert names == ["gpt2-2012", "gpt2-2013", "llama-2013h2"]
    for rec in records[1:]:
        assert rec["fingerprint"] == model_fingerprint(ModelSpec(base=rec["model"]), "")
        assert dt.date.fromisoformat(rec["cutoff"]) < pd.Timestamp(rec["timestamp"]).date()


def test_a_gpt2_lora_targets_conv1d_layers_trains_and_reloads(tiny_models: Path, tmp_path: Path,
                                                              llmbt_home: Path) -> None:
    from llmbt.signals_cache.finetune.trainer import TrainConfig, finetune
    from llmbt.signals_cache.model.loading import ModelSpec, load_model
    from llmbt.signals_cache.scoring.prompts import get_template, render
    from llmbt.signals_cache.scoring.scorer import LabelScorer

    base = str(tiny_models / "gpt2-2012")
    examples = [("Profit soars on record sales", "bullish", "ACME"),
                ("Regulator opens fraud probe", "bearish", "ACME"),
                ("Board meets on Tuesday", "neutral", "ACME")] * 6
    cfg = TrainConfig(max_steps=6, early_stopping_patience=0, lr=1e-2, batch_size=6,
                      warmup_ratio=0.0, dropout=0.0, top_layers=1)
    meta = finetune(examples, [], ModelSpec(base=base), tmp_path / "lora", cfg, progress=False)
    targets = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())["target_modules"]
    assert {t.rsplit(".", 1)[-1] for t in targets} == {"c_attn", "c_proj", "c_fc"}
    assert all(".h.1." in t for t in targets)  # top_layers=1: the last block only
    assert meta["metrics"]["train_loss"]["last"] < meta["metrics"]["train_loss"]["first"]
    prompt = [render(get_template("headlines-v1"), load_model(ModelSpec(base=base)).tokenizer,
                     symbol="ACME", headline="Profit soars on record sales")]
    plain = LabelScorer(load_model(ModelSpec(base=base))).label_probs(prompt)
    tuned = LabelScorer(load_model(ModelSpec(base=base, adapter=str(tmp_path / "lora"))))
    assert not np.allclose(tuned.label_probs(prompt), plain)


@pytest.mark.slow
def test_a_scheduled_walk_forward_trains_each_folds_lora_from_its_model(
        tiny_models: Path, tmp_path: Path, llmbt_home: Path) -> None:
    from llmbt.experiments.walkforward import WalkForwardConfig, run_walkforward

    run = RunConfig(strategy="llm_sentiment", data="sample:GOOG", start="2011-06-01",
                    end="2013-03-01", model_schedule=str(tiny_models / "schedule.yaml"),
                    before_first="skip", benchmark="buy_and_hold")
    cfg = WalkForwardConfig(run=run, splitter=WalkForward(train=126, test=63, embargo=5),
                            train={"max_steps": 4, "eval_every": 4, "batch_size": 8})
    result = run_walkforward(cfg, say=lambda _: None)
    ok = result.ok
    assert len(ok) >= 3 and len({f.facts["model"] for f in ok}) >= 2
    for fold in ok:
        cutoff = dt.date.fromisoformat(fold.facts["cutoff"])
        assert cutoff < pd.Timestamp(fold.facts["test_start"]).date()
        meta = json.loads((Path(fold.facts["adapter"]) / "llmbt_adapter.json").read_text())
        assert meta["base_model"] == fold.facts["model"]
