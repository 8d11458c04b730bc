"""``bt score``: headlines in, one JSON line per item out, with the numbers a backtest uses."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from llmbt.cli import cli
from llmbt.cli.score import batches
from llmbt.signals_cache import provider, signals, universe
from llmbt.signals_cache.model.chat_template import save_chat_template
from llmbt.signals_cache.model.loading import ModelSpec, model_fingerprint
from llmbt.signals_cache.scorer_id import ScorerId
from llmbt.signals_cache.signals import SignalRequest

HEADLINES = [("2024-01-02T12:00Z", "AAA", "Acme beats estimates"),
             ("2024-01-02T13:00Z", "BBB", "Acme beats estimates"),
             ("2024-01-03T12:00Z", "BBB", "Bolt  sued over   fraud"),
             ("2024-01-04T12:00Z", "AAA", "Acme names a new chief executive")]
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")


class StubScorer:
    """Stands in for the model: probabilities from the prompt's text; counts the prompts sent."""

    sent: list[str] = []

    def __init__(self, spec: ModelSpec) -> None:
        self.load_seconds = 0.0

    def score(self, prompts: list[str], batch_size: int) -> np.ndarray:
        StubScorer.sent.extend(prompts)
        bull = np.array([(sum(map(ord, p)) % 97) / 200 for p in prompts])
        return np.column_stack([bull, 0.5 - bull / 3, 0.4 - bull / 2])


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model folder (weights only hashed) with a saved chat template; the model stubbed."""
    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"stub weights")
    save_chat_template(SimpleNamespace(chat_template=CHATML, special_tokens_map={}), str(folder))
    monkeypatch.setattr(signals, "LazyScorer", StubScorer)
    monkeypatch.setattr(provider, "LazyScorer", StubScorer)
    StubScorer.sent = []
    return folder


def _bars(n: int) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    close = np.linspace(100, 110, n)
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": 1e6}, index=idx)


def _jsonl(rows) -> str:
    return "".join(json.dumps({"timestamp": t, "symbol": s, "headline": h}) + "\n" for t, s, h in rows)


def _score(args: list[str], stdin: str | None = None):
    return CliRunner().invoke(cli, ["score", *args], input=stdin)


def test_bt_score_gives_exactly_the_scores_a_portfolio_run_uses(model, tmp_path, monkeypatch):
    seen = {}
    real = universe.score_rendered

    def recording(prompts, req, version):
        seen["prompts"], seen["version"] = prompts, version
        seen["result"], scorer = real(prompts, req, version)
        return seen["result"], scorer

    monkeypatch.setattr(universe, "score_rendered", recording)
    news = pd.DataFrame(HEADLINES, columns=["timestamp", "symbol", "headline"])
    news["timestamp"] = pd.to_datetime(news["timestamp"], utc=True)
    req = SignalRequest(scorer=ScorerId(model=str(model)), mode="headlines",
                        cache_dir=str(tmp_path / "signals"), progress=False)
    universe.universe_signals({"AAA": _bars(6), "BBB": _bars(6)}, news, req)
    assert seen["version"] == "headlines-v2" and len(StubScorer.sent) == 3  # distinct headlines
    res = _score(["--model", str(model), "--cache-dir", str(tmp_path / "signals")], _jsonl(HEADLINES))
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.output.splitlines()]
    assert len(StubScorer.sent) == 3  # every item was a cache hit: no model call
    result = seen["result"]
    order = [next(i for i, p in enumerate(seen["prompts"]) if " ".join(h.split()) + "<" in p)
             for _, _, h in HEADLINES]  # each item's distinct headline in the universe's pass
    assert sorted(set(order)) == [0, 1, 2]
    assert [r["score"] for r in out] == [float(result.score[i]) for i in order]
    assert [r["confidence"] for r in out] == [float(result.confidence[i]) for i in order]
    assert [r["label_mass"] for r in out] == [float(result.label_mass[i]) for i in order]
    assert [r["symbol"] for r in out] == ["AAA", "BBB", "BBB", "AAA"]
    assert out[0]["timestamp"] == "2024-01-02T12:00Z" and out[0]["template"] == "headlines-v2"
    assert out[0]["fingerprint"] == model_fingerprint(ModelSpec(base=str(model)), "")
    assert out[0]["label"] == ("bullish", "bearish", "neutral")[int(np.argmax(result.probs[0]))]


def test_csv_input_and_rendered_prompts(model, tmp_path):
    csv = tmp_path / "news.csv"
    csv.write_text('timestamp,symbol,headline\n2024-01-02,AAA,"Acme beats, again"\n')
    first = _score(["--model", str(model), str(csv)])
    assert first.exit_code == 0 and json.loads(first.output)["symbol"] == "AAA", first.output
    prompt = StubScorer.sent[-1]
    again = _score(["--model", str(model), "--mode", "prompts", "--prompt", "headlines-v2"],
                   json.dumps({"symbol": "AAA", "prompt": prompt}) + "\n")
    assert json.loads(again.output)["score"] == json.loads(first.output)["score"]
    assert len(StubScorer.sent) == 1  # the rendered prompt hit the headline's cache entry
    no_version = _score(["--model", str(model), "--mode", "prompts"], '{"prompt": "x"}\n')
    assert no_version.exit_code == 1 and "--mode prompts needs --prompt VERSION" in no_version.output


@pytest.mark.parametrize(("stdin", "name", "message"), [
    ('{"symbol": "A", "headline": "ok"}\n\n', "in.jsonl", "line 2 is empty; write one JSON object"),
    ('{"headline": "ok"}\n{"headline": oops}\n', "in.jsonl", "line 2 is not valid JSON"),
    ('{"symbol": "A", "title": "x"}\n', "in.jsonl", "line 1 has no 'headline' field (got ['symbol',"),
    ('["a"]\n', "in.jsonl", "line 1 is a JSON list, not an object"),
    ('{"headline": "  "}\n', "in.jsonl", "line 1 has an empty 'headline'; drop that line"),
    ("timestamp,symbol,title\n2024-01-02,AAA,x\n", "in.csv", "line 1: the CSV header ['timestamp', "
     "'symbol', 'title'] has no 'headline' column; name the columns timestamp,symbol,headline"),
])
def test_bad_input_is_one_line_naming_the_line_and_the_fix(model, tmp_path, stdin, name, message):
    path = tmp_path / name
    path.write_text(stdin)
    res = _score(["--model", str(model), str(path)])
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert res.exit_code == 1 and len(errors) == 1 and message in errors[0], res.output
    assert "Traceback" not in res.output


def test_batches_close_when_no_more_input_is_waiting() -> None:
    rows = [(i, i) for i in range(1, 8)]
    assert [len(b) for b in batches(rows, 3, lambda: True)] == [3, 3, 1]
    waiting = iter([True, False, True, True, True, True, True])
    assert [len(b) for b in batches(rows, 3, lambda: next(waiting))] == [2, 3, 2]


def test_a_pipe_gets_each_line_back_before_the_next_is_written(model, tmp_path):
    cache = str(tmp_path / "signals")
    primed = _score(["--model", str(model), "--cache-dir", cache], _jsonl(HEADLINES))
    assert primed.exit_code == 0, primed.output
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "llmbt", "score", "--model", str(model),
                             "--cache-dir", cache], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        for row, expected in zip(HEADLINES[:2], primed.output.splitlines()[:2], strict=True):
            proc.stdin.write(_jsonl([row]))
            proc.stdin.flush()  # stdin stays open: a live system waits for its answer
            assert select.select([proc.stdout], [], [], 120)[0], "no line came back"
            assert json.loads(proc.stdout.readline()) == json.loads(expected)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def _universe_files(tmp_path: Path) -> dict[str, str]:
    """A two-symbol universe (60 daily bars), headlines naming both companies, and their names."""
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    rows = [(d.date(), s, c, c + 1, c - 1, c, 1e6) for s, k in (("AAA", 1.0), ("BBB", -0.5))
            for d, c in zip(days, 100 + k * np.arange(60), strict=True)]
    prices = pd.DataFrame(rows, columns=["timestamp", "symbol", "open", "high", "low", "close",
                                         "volume"])
    prices.to_csv(tmp_path / "prices.csv", index=False)
    news = [("2024-02-05", "AAA", "Acme  beats estimates as Bolt Corp lags"),
            ("2024-02-05", "BBB", "Acme  beats estimates as Bolt Corp lags"),
            ("2024-02-12", "BBB", "BBB sued over fraud"), ("2024-02-20", "AAA", "Acme Inc cuts jobs")]
    pd.DataFrame(news, columns=["timestamp", "symbol", "headline"]).to_csv(tmp_path / "news.csv",
                                                                            index=False)
    (tmp_path / "names.csv").write_text("symbol,company\nAAA,Acme Inc\nBBB,Bolt Corp\n")
    return {"prices": str(tmp_path / "prices.csv"), "news": str(tmp_path / "news.csv"),
            "names": str(tmp_path / "names.csv"), "jsonl": _jsonl(news)}


def _other_precision() -> str:
    from llmbt.signals_cache.model.precision import resolve_precision

    return "float32" if resolve_precision("auto", "cpu") != "float32" else "bf16"


@pytest.mark.parametrize("flags", [["--precision", "other"], ["--quantization", "4bit"]])
def test_bt_score_reproduces_a_bt_run_scored_with_precision_quantization_and_anonymize(
        model, tmp_path, flags):
    files = _universe_files(tmp_path)
    flags = [_other_precision() if f == "other" else f for f in flags]
    flags += ["--model", str(model), "--anonymize", "--names", files["names"],
              "--cache-dir", str(tmp_path / "signals")]
    run = CliRunner().invoke(cli, ["run", "--strategy", "llm_news_portfolio", "--data",
                                   f"csv:{files['prices']}", "--news", files["news"], "--news-tz",
                                   "UTC", "--start", "2024-02-01", "--param", "top_k=1",
                                   "--no-report", *flags])
    assert run.exit_code == 0, run.output
    scored = list(StubScorer.sent)  # the run's prompts: masked for each row's symbol
    masked = ["Company A beats estimates as Company B lags", "Company B beats estimates as "
              "Company A lags", "Company A sued over fraud", "Company A cuts jobs"]
    prompts = [next(p for p in scored if f"Headline: {text}<" in p) for text in masked]
    assert sorted(prompts) == sorted(scored)
    res = _score(flags, files["jsonl"])
    assert res.exit_code == 0, res.output
    assert StubScorer.sent == scored  # every item was a cache hit of the run's keys
    out = [json.loads(line) for line in res.output.splitlines()]
    spec = ModelSpec(base=str(model), precision=flags[1] if flags[0] == "--precision" else "auto",
                     quantization=flags[1] if flags[0] == "--quantization" else "none")
    assert {r["fingerprint"] for r in out} == {model_fingerprint(spec, "")}
    assert model_fingerprint(spec, "") != model_fingerprint(ModelSpec(base=str(model)), "")
    stub = StubScorer(spec).score(scored, 1)  # the probabilities the run cached, normalised
    want = {p: float((b - e) / (b + e + n)) for p, (b, e, n) in zip(scored, stub, strict=True)}
    assert [r["score"] for r in out] == pytest.approx([want[p] for p in prompts], rel=1e-12)


def test_bt_score_anonymize_needs_names_headlines_and_symbols(model, tmp_path):
    names = _universe_files(tmp_path)["names"]
    cases = [([], '{"symbol": "A", "headline": "x"}', "needs --names FILE"),
             (["--names", names], '{"headline": "Acme up"}', "line 1: --anonymize masks the item's "
              "own company as Company A; give each item a symbol"),
             (["--names", names, "--mode", "prompts", "--prompt", "headlines-v2"],
              '{"prompt": "x"}', "--mode prompts are rendered already")]
    for flags, stdin, message in cases:
        res = _score(["--model", str(model), "--anonymize", *flags], stdin + "\n")
        errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
        assert res.exit_code == 1 and len(errors) == 1 and message in errors[0], res.output


def test_bt_score_reproduces_an_anonymized_single_symbol_run(model, tmp_path):
    files = _universe_files(tmp_path)
    prices = pd.read_csv(files["prices"])
    prices[prices["symbol"] == "AAA"].drop(columns="symbol").to_csv(tmp_path / "aaa.csv", index=False)
    flags = ["--model", str(model), "--anonymize", "--names", files["names"], "--prompt",
             "headlines-v1", "--cache-dir", str(tmp_path / "signals")]
    run = CliRunner().invoke(cli, ["run", "--strategy", "llm_sentiment", "--mode", "headlines",
                                   "--data", f"csv:{tmp_path / 'aaa.csv'}", "--news", files["news"],
                                   "--news-tz", "UTC", "--start", "2024-02-01", "--no-report",
                                   *flags])
    assert run.exit_code == 0, run.output
    scored = list(StubScorer.sent)
    assert len(scored) == 2 and all("Symbol: Company A" in p for p in scored), scored
    aaa = "".join(line for line in files["jsonl"].splitlines(keepends=True) if '"AAA"' in line)
    res = _score(flags, aaa)
    assert res.exit_code == 0, res.output
    assert StubScorer.sent == scored  # both items were cache hits of the run's keys
