"""Studies: every table the docs include names a study whose recipe still matches, and the quick
studies regenerate their committed tables byte for byte from a cold cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import ROOT, SHARED_DATA

from llmbt.cli import cli
from llmbt.errors import ConfigError
from llmbt.experiments.studies import load_recipe
from llmbt.reports.studies import blocks_in, study_of

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _blocks() -> list[tuple[Path, str, str, str]]:
    return [(page, *found) for page in PAGES for found in blocks_in(page.read_text())]


def test_every_table_in_the_docs_names_a_study_whose_recipe_still_matches() -> None:
    blocks = _blocks()
    assert {name for _, name, _, _ in blocks} >= {"demo", "sma_goog", "universe_pit_defaults"}
    for page, name, recipe_hash, table in blocks:
        recipe = load_recipe(ROOT / "studies" / f"{study_of(name)}.yaml")
        assert recipe.fingerprint() == recipe_hash, f"{page}: {name}'s recipe changed; re-run it"
        assert table.startswith(("| Metric |", "| Measurement |", "| Fold |", "| Statistic |", "- ",
                                 "| headlines |", "| cut |", "| Horizon (bars) |",
                                 "The Sharpe difference")), \
            f"{page}: the {name} table is empty"
        results = blocks_in((ROOT / "docs" / "results" / f"{study_of(name)}.md").read_text())
        assert [t for n, _, t in results if n == name] == [table], f"{page}: {name} is stale"


def test_every_recipe_loads_and_has_its_results_page() -> None:
    for path in sorted((ROOT / "studies").glob("*.yaml")):
        recipe = load_recipe(path)
        assert (ROOT / "docs" / "results" / f"{recipe.name}.md").is_file(), recipe.name


@pytest.mark.parametrize("name", [load_recipe(p).name for p in sorted((ROOT / "studies").glob("*.yaml"))
                                  if load_recipe(p).quick])
def test_a_quick_study_regenerates_its_table_from_a_cold_cache(name, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(cli, ["study", "run", f"studies/{name}.yaml", "--check",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output


def test_check_fails_when_the_published_table_differs(tmp_path, monkeypatch) -> None:
    docs = tmp_path / "docs" / "results"
    docs.mkdir(parents=True)
    page = (ROOT / "docs" / "results" / "sma_goog.md").read_text()
    docs.joinpath("sma_goog.md").write_text(page.replace("| Sharpe | 0.", "| Sharpe | 9."))
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    res = CliRunner().invoke(cli, ["study", "run", str(ROOT / "studies" / "sma_goog.yaml"),
                                   "--check", "--docs", str(tmp_path / "docs"),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and "differ from the docs: sma_goog" in res.output


@pytest.mark.usefixtures("llmbt_home")
@pytest.mark.parametrize(("quoted", "fresh"), [("0.23", True), ("0.24", False)])
def test_check_compares_the_figures_the_guides_quote(quoted, fresh, tmp_path) -> None:
    docs = tmp_path / "docs"
    (docs / "results").mkdir(parents=True)
    (docs / "results" / "sma_goog.md").write_text((ROOT / "docs" / "results" / "sma_goog.md").read_text())
    quote = f"<!-- quote:sma_goog|Sharpe|sma_cross -->{quoted}<!-- /quote -->"
    (docs / "guide.md").write_text(f"Sharpe {quote}.\n")
    res = CliRunner().invoke(cli, ["study", "run", str(ROOT / "studies" / "sma_goog.yaml"),
                                   "--check", "--docs", str(docs), "--out", str(tmp_path / "out")])
    assert (res.exit_code == 0) is fresh, res.output


@pytest.mark.usefixtures("llmbt_home")
def test_a_study_run_rewrites_the_figures_the_guides_quote(tmp_path, monkeypatch) -> None:
    guide = tmp_path / "docs" / "guide.md"
    guide.parent.mkdir()
    guide.write_text("Sharpe <!-- quote:sma_goog|Sharpe|sma_cross -->0.24<!-- /quote -->.\n")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["study", "run", str(ROOT / "studies" / "sma_goog.yaml")])
    assert res.exit_code == 0 and "updated docs/guide.md" in res.output, res.output
    assert guide.read_text() == "Sharpe <!-- quote:sma_goog|Sharpe|sma_cross -->0.23<!-- /quote -->.\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nkind: run\nconfig: {strategy: sma_cross}\n", "must be the file's name 'bad'"),
    ("name: bad\nkind: backtest\nconfig: {}\n", "kind 'backtest' must be one of run, walkforward"),
    ("name: bad\nkind: evaluate\nevaluate: {corpus: x.csv}\n", "give corpus: FILE and a list of arms"),
    ("name: bad\nkind: evaluate\nevaluate: {corpus: x, arms: [{name: a, train: lorra}]}\n",
     "train 'lorra' must be one of lora, seqcls, head. Did you mean 'lora'"),
    ("name: bad\nkind: evaluate\nevaluate: {corpus: x, arms: [{name: a}, {name: a}]}\n",
     "arm name 'a' is given twice"),
    ("name: bad\nkind: bench\nbench: {suite: scorng}\n", "suite 'scorng' must be one of scoring"),
    ("name: bad\nkind: bench\nbench: {suite: scoring, repeat: 3}\n", "unknown key 'repeat'"),
    ("name: bad\nkind: bench\nbench: {suite: train}\n", "suite train needs variants"),
    ("name: bad\nkind: bench\nbench: {suite: scoring, variants: {a: {}}}\n",
     "bench suite scoring: unknown key 'variants'"),
    ("name: bad\nkind: bench\nbench: {suite: train, variants: {a: {precison: bf16}}}\n",
     "bench variant 'a': unknown key 'precison'. Did you mean 'precision'"),
    ("name: bad\nkind: bench\nbench: {suite: train, variants: {a: {precision: fp16}}}\n",
     "--precision 'fp16'"),
    ("name: bad\nkind: bench\nbench: {suite: precision_backtest}\n",
     "suite precision_backtest needs runs"),
    ("name: bad\nkind: bench\nbench: {suite: schedule}\n", "suite schedule needs schedule: the schedule"),
    ("name: bad\nkind: bench\nbench: {suite: trials, schedule: s.csv}\n",
     "bench suite trials: unknown key 'schedule'"),
    ("name: bad\nkind: bench\nbench: {suite: precision_backtest, runs: {a: {stratgy: x}}}\n",
     "bench run 'a': unknown key 'stratgy'"),
    ("name: bad\nkind: bench\nbench: {suite: select, runs: {a: {strategy: llm_news_portfolio}}}\n",
     "bench run 'a': the select suite times a rule"),
    ("name: bad\nkind: bench\nbench: {suite: select}\n", "suite select needs runs"),
    ("name: bad\nkind: audit\nconfig: {}\naudit: {cut: 5}\n", "audit: unknown key 'cut'"),
    ("name: bad\nkind: run\nconfig: {strategy: llm_news_portfolio}\nrun: {jitter: 20}\n",
     "jitter 20 needs jitter_sigma"),
    ("name: bad\nkind: run\nconfig: {}\nrun: {jitter: 3, jitter_sigma: 0.01}\n",
     "--strategy sma_cross is single-instrument"),
    ("name: bad\nkind: run\nconfig: {}\nrun: {jiter: 3}\n", "run: unknown key 'jiter'"),
    ("name: bad\nkind: walkforward\nconfig: {strategy: llm_sentiment}\n"
     "walkforward: {jitter: 3, jitter_sigma: 0.01}\n", "--strategy llm_sentiment is single-instrument"),
    ("name: bad\nkind: audit\nconfig: {}\naudit: {cuts: 0}\n", "audit cuts 0 must be a whole number"),
    ("name: bad\nkind: run\nconfg: {}\n", "unknown key 'confg'. Did you mean 'config'"),
    ("name: bad\nkind: run\nconfig: {stratgy: sma_cross}\n", "study bad: study bad config: unknown key"),
])
def test_a_bad_recipe_is_one_clear_line(tmp_path, text, expected) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        load_recipe(path)


FPB = SHARED_DATA / "fpb" / "fpb50_dev.csv"


@pytest.mark.skipif(not FPB.is_file(), reason="needs ../shared/data/fpb (the PhraseBank corpus)")
def test_an_evaluate_study_scores_the_test_split_as_bt_dataset_build_splits_it(tmp_path) -> None:
    from llmbt.experiments.study_evaluate import eval_settings, run_evaluate
    from llmbt.reports.studies import render_table

    settings = eval_settings({"corpus": str(FPB), "arms": [{"name": "lex", "kind": "lexicon"}]}, "t")
    columns = run_evaluate(settings, say=lambda _: None)
    lex = columns["lex"]  # the lexicon's published figures on this split (seed 0)
    assert (lex["n"], round(lex["weighted_f1"], 3), round(lex["accuracy"], 3)) == (386, 0.594, 0.601)
    table = render_table("evaluate", {}, {}, columns)
    assert "| weighted F1 | 0.594 |" in table and "| training | — |" in table


def test_an_evaluate_and_a_bench_table_render_each_column() -> None:
    from llmbt.reports.studies import render_table

    metrics = {"weighted_f1": 0.8504, "macro_f1": 0.845, "accuracy": 0.852, "mean_confidence": 0.86,
               "per_class": {k: {"f1": f} for k, f in (("bullish", .76), ("bearish", .89),
                                                         ("neutral", .88))},
               "ece": 0.05, "brier": 0.24, "ms_per_item": 35.04, "train_seconds": 1269.4,
               "best_step": 400}
    table = render_table("evaluate", {}, {}, {"LoRA": metrics})
    assert "| F1 bullish / bearish / neutral | 0.76 / 0.89 / 0.88 |" in table
    assert "| training | 21 min 9 s, best step 400 |" in table and "| ms per sentence | 35.0 |" in table
    bench = render_table("bench", {}, {}, {"a": {"items_per_s": 9.87, "prompt": "bars-v2",
                                                 "n_prompts": 64}, "b": {"items_per_s": 1234.5}})
    assert bench.splitlines()[2:] == ["| items per s | 9.870 | 1,234 |", "| prompt | bars-v2 | — |",
                                      "| n prompts | 64 | — |"]


def test_an_interrupted_training_leaves_nothing_the_store_takes_for_finished(tmp_path, monkeypatch) -> None:
    from llmbt.experiments import adapter_store

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path))
    folder = tmp_path / "adapters" / "k"

    def boom(tmp: Path) -> dict:
        tmp.mkdir(parents=True)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        adapter_store._stored(folder, "meta.json", boom)
    assert not folder.exists()

    def train(tmp: Path) -> dict:
        tmp.mkdir(parents=True)
        (tmp / "meta.json").write_text('{"metrics": {"seconds": 1.0}}')
        return {"metrics": {"seconds": 1.0}}

    assert adapter_store._stored(folder, "meta.json", train)[2] is False
    reused = adapter_store._stored(folder, "meta.json", boom)  # not trained again
    assert reused == (str(folder), {"metrics": {"seconds": 1.0}}, True)



def test_a_train_bench_study_times_each_variant_on_the_same_examples(tiny, tmp_path) -> None:
    from helpers import toy_examples

    from llmbt.experiments.study_bench import bench_settings, run_bench
    from llmbt.reports.studies import render_table

    corpus = tmp_path / "toy.csv"
    corpus.write_text("text,label\n" + "".join(f'"{e.text}",{e.label}\n' for e in toy_examples(3)))
    old = {"precision": "fp32", "group_by_length": False, "share_prefix": False}
    settings = bench_settings({"suite": "train", "model": str(tiny), "steps": 2, "batch_size": 4,
                               "n_val": 8, "examples": str(corpus),
                               "variants": {"old loop": old, "default": {}}}, "t")
    said: list[str] = []
    columns = run_bench(settings, say=said.append)
    assert list(columns) == ["old loop", "default"]
    assert [line.split(":")[0] for line in said] == ["old loop", "default"]  # as each finishes
    assert columns["old loop"]["precision"] == "fp32" and not columns["old loop"]["share_prefix"]
    assert columns["default"]["group_by_length"] and columns["default"]["share_prefix"]
    for row in columns.values():  # the same examples and seed: the same loss before training
        assert row["steps"] == 2 and row["tokens_per_s"] > 0
        assert row["val_loss_start"] == columns["old loop"]["val_loss_start"]
    assert columns["old loop"]["vs_first"] == 1.0
    assert columns["default"]["vs_first"] == pytest.approx(
        columns["default"]["tokens_per_s"] / columns["old loop"]["tokens_per_s"])
    assert "| vs first | 1.000 |" in render_table("bench", {}, {}, columns)
    with pytest.raises(ConfigError, match="is not a file"):
        run_bench(bench_settings({"suite": "train", "examples": str(tmp_path / "no.csv"),
                                  "variants": {"d": {}}}, "t"))


def test_a_train_bench_variant_may_train_the_classification_head_lora(tiny, tmp_path) -> None:
    from helpers import toy_examples

    from llmbt.experiments.study_bench import bench_settings, run_bench

    corpus = tmp_path / "toy.csv"
    corpus.write_text("text,label\n" + "".join(f'"{e.text}",{e.label}\n' for e in toy_examples(3)))
    whole = {"method": "seqcls", "share_prefix": False}
    settings = bench_settings({"suite": "train", "model": str(tiny), "steps": 2, "batch_size": 4,
                               "n_val": 8, "examples": str(corpus),
                               "variants": {"lora": {}, "cls whole": whole, "cls": {"method": "seqcls"}}},
                              "t")
    columns = run_bench(settings)
    assert [c["method"] for c in columns.values()] == ["lora", "seqcls", "seqcls"]
    assert not columns["cls whole"]["share_prefix"] and columns["cls"]["share_prefix"]
    # each classifier starts from the same fresh head: the same held-out loss before training,
    # over three classes (not the label tokens' loss of the LoRA)
    assert columns["cls"]["val_loss_start"] == pytest.approx(columns["cls whole"]["val_loss_start"])
    assert columns["cls"]["val_loss_start"] != pytest.approx(columns["lora"]["val_loss_start"])
    assert all(c["steps"] == 2 and c["tokens_per_s"] > 0 for c in columns.values())


def test_a_shapes_bench_study_scores_and_trains_each_shape_and_refuses_cuda_without_a_gpu() -> None:
    import torch

    from llmbt.experiments.study_bench import bench_settings, run_bench

    settings = bench_settings({"suite": "shapes", "shapes": ["tiny-llama", "tiny-qwen"],
                               "quantizations": ["none"], "n": 8, "steps": 2, "batch_size": 4}, "t")
    columns = run_bench(settings)
    assert list(columns) == ["tiny-llama none", "tiny-qwen none"]
    for row in columns.values():
        assert row["device"] == "cpu" and row["score_items_per_s"] > 0
        assert row["train_tokens_per_s"] > 0 and row["max_abs_diff_vs_none"] == 0.0
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU here"):
            run_bench(bench_settings({"suite": "shapes", "device": "cuda"}, "t"))


@pytest.mark.usefixtures("llmbt_home", "sent")
def test_a_run_study_adds_the_jitter_spread_and_sigma_zero_reproduces_the_run(shared_news) -> None:
    from helpers_portfolio import portfolio_config

    from llmbt.experiments.jitter import jitter_portfolio
    from llmbt.experiments.studies import Recipe, run_study

    config = portfolio_config(shared_news, benchmark="none")
    fields = config.to_dict()
    recipe = Recipe("j", "j", "run", fields, {"jitter": 3, "jitter_sigma": 0.02})
    extra = run_study(recipe, "unused").extra
    lo, mid, hi = (again := jitter_portfolio(config, 3, 0.02)).spread()
    assert extra["Sharpe, --jitter 3 σ 0.02 (min / median / max)"] == {
        config.strategy: f"{lo:.2f} / {mid:.2f} / {hi:.2f}"}
    assert extra["Fills repeated under --jitter"][config.strategy].endswith("%")
    still = run_study(Recipe("j", "j", "run", fields, {"jitter": 2, "jitter_sigma": 0}), "x").extra
    sharpe = f"{again.base.stats['sharpe']:.2f}"
    assert still["Sharpe, --jitter 2 σ 0 (min / median / max)"][config.strategy] == \
        f"{sharpe} / {sharpe} / {sharpe}"
    assert still["Fills repeated under --jitter"] == {config.strategy: "100%"}
