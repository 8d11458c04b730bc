"""A fully cached run costs what a plain backtest costs: prompts are rendered from the model's
saved chat template (jinja2, as transformers renders it) and torch/transformers are never imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from helpers_scoring import SMOLLM2_CHATML, SMOLLM2_TOKENS, StubScorer, model_folder

from llmbt.cli import cli
from llmbt.errors import LlmbtError
from llmbt.signals_cache import signals
from llmbt.signals_cache.model.chat_template import (
    ChatTemplate,
    read_chat_template,
    save_chat_template,
    template_file,
)
from llmbt.signals_cache.model.loading import ModelSpec, load_chat_template
from llmbt.signals_cache.model.quantization import GPU_NODES
from llmbt.signals_cache.scoring.prompts import TEMPLATES, render

# trim_blocks / lstrip_blocks, tojson, namespace, loop controls, a {% generation %} block and a
# special token: each renders differently under a differently configured environment
TRICKY = """{{ bos_token }}
{% set ns = namespace(n=0) %}
{% for m in messages %}
    {% if m['role'] == 'skip' %}{% continue %}{% endif %}
    {% set ns.n = ns.n + 1 %}
  [{{ ns.n }}] {{ m['role'] | upper }}: {{ m['content'] | tojson }}
    {% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}{% endif %}
{% endfor %}
{% if add_generation_prompt %}
<assistant>
{% endif %}"""
MESSAGES = [{"role": "system", "content": "Judge <b>\"this\"</b> & é"},
            {"role": "skip", "content": "x"}, {"role": "user", "content": "Acme beats\nestimates"},
            {"role": "assistant", "content": "bullish"}]


pytestmark = pytest.mark.usefixtures("llmbt_home")


@pytest.mark.parametrize("template", [SMOLLM2_CHATML, TRICKY])
@pytest.mark.parametrize("generation", [True, False])
def test_rendering_matches_transformers_own_renderer(template: str, generation: bool) -> None:
    from transformers.utils.chat_template_utils import render_jinja_template

    ours = ChatTemplate(template, SMOLLM2_TOKENS).apply_chat_template(MESSAGES,
                                                                      add_generation_prompt=generation)
    theirs = render_jinja_template([MESSAGES], chat_template=template,
                                   add_generation_prompt=generation, **SMOLLM2_TOKENS)[0][0]
    assert ours == theirs
    assert "<|im_start|>" in ours  # the special tokens and messages were seen at all


def test_a_template_that_raises_is_one_error_and_tokenizing_is_refused() -> None:
    refusing = ChatTemplate("{{ raise_exception('system messages are not supported') }}")
    with pytest.raises(LlmbtError, match="refused the prompt: system messages are not supported"):
        refusing.apply_chat_template(MESSAGES)
    with pytest.raises(LlmbtError, match="text only"):
        ChatTemplate(SMOLLM2_CHATML).apply_chat_template(MESSAGES, tokenize=True)


def test_the_saved_template_is_plain_json_keyed_by_the_tokenizer_files(tmp_path, llmbt_home) -> None:
    folder = model_folder(tmp_path)
    tokenizer = SimpleNamespace(chat_template=SMOLLM2_CHATML, special_tokens_map=SMOLLM2_TOKENS)
    assert read_chat_template(str(folder)) is None
    saved = save_chat_template(tokenizer, str(folder))
    path = template_file(str(folder))
    assert path.parent == llmbt_home / "models" / "chat_templates"
    assert json.loads(path.read_text())["chat_template"] == SMOLLM2_CHATML
    assert read_chat_template(str(folder)) == saved == ChatTemplate(SMOLLM2_CHATML, SMOLLM2_TOKENS)
    assert load_chat_template(ModelSpec(base=str(folder))) == saved  # no tokenizer load
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": SMOLLM2_CHATML + " "}))
    assert read_chat_template(str(folder)) is None  # an edited tokenizer is read afresh
    assert save_chat_template(tokenizer, "org/not-a-folder") is None
    assert save_chat_template(SimpleNamespace(chat_template=None), str(folder)) is None


CHECK = """
import json, sys
from llmbt.cli import cli
code = None
try:
    cli(sys.argv[1:], prog_name="bt")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules,
                  "transformers": "transformers" in sys.modules}))
"""


def _stubbed_run_args(tmp_path, monkeypatch) -> list[str]:
    """``bt run`` arguments of an llm_sentiment run on a saved tokenizer-only model folder whose
    scoring is stubbed (StubScorer), its scores cached under tmp_path/signals."""
    folder = model_folder(tmp_path)
    save_chat_template(SimpleNamespace(chat_template=SMOLLM2_CHATML, special_tokens_map=SMOLLM2_TOKENS),
                       str(folder))
    monkeypatch.setattr(signals, "LazyScorer", StubScorer)
    return ["run", "--strategy", "llm_sentiment", "--data", "sample:GOOG", "--start", "2013-01-01",
            "--model", str(folder), "--cache-dir", str(tmp_path / "signals"), "--no-report"]


def test_a_fully_cached_run_imports_neither_torch_nor_transformers(tmp_path, monkeypatch, llmbt_home):
    args = _stubbed_run_args(tmp_path, monkeypatch)
    primed = CliRunner().invoke(cli, args)
    assert primed.exit_code == 0 and " misses)" in primed.output and " 0 misses" not in primed.output
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", CHECK, *args], capture_output=True, text=True,
                         env=env, timeout=300, check=True).stdout
    facts = json.loads(out.strip().splitlines()[-1])
    assert facts["code"] in (0, None) and "0 misses" in out, out
    assert facts["transformers"] is False
    if not any(os.path.exists(p) for p in GPU_NODES):  # with a GPU, torch says whether it is CUDA
        assert facts["torch"] is False
    assert out.split("Final value")[1].split("\n")[0] == primed.output.split("Final value")[1].split("\n")[0]


def test_a_fully_cached_run_says_so_without_a_rate_or_nan(tmp_path, monkeypatch) -> None:
    """Nothing scored: no NaN ms per item and no cache-read rate posing as a scoring speed."""
    args = _stubbed_run_args(tmp_path, monkeypatch)
    primed = CliRunner().invoke(cli, args)
    assert primed.exit_code == 0, primed.output
    assert "ms per scored item: " in primed.output and " items/s" in primed.output
    cached = CliRunner().invoke(cli, args)
    assert cached.exit_code == 0, cached.output
    n = cached.output.split("signals: ")[1].split(" bar prompts")[0]
    lines = cached.output.splitlines()
    scoring = next(line for line in lines if line.startswith("scoring: "))
    assert scoring.startswith(f"scoring: all {n} prompts from the cache (")
    assert scoring.endswith(" s), no model call")
    assert "ms per scored item" not in cached.output and "items/s" not in cached.output
    assert "nan" not in cached.output.lower()


@pytest.mark.slow
@pytest.mark.parametrize("version", sorted(TEMPLATES))
def test_saved_template_renders_byte_identical_to_the_embedded_tokenizer(version, monkeypatch):
    monkeypatch.delenv("LLMBT_HOME")  # the embedded model's store, converted once per machine
    from llmbt.signals_cache.model.loading import load_tokenizer

    spec = ModelSpec()
    tokenizer = load_tokenizer(spec)  # saves the template
    saved = load_chat_template(spec)
    assert isinstance(saved, ChatTemplate)
    template = TEMPLATES[version]
    fields = {"symbol": "GOOG", "headline": "Alphabet beats estimates; shares jump 5% — \"record\"",
              "features": "\n".join(f"{n}: 1.25" for n in _feature_names())}
    fields = {k: v for k, v in fields.items() if k in template.fields}
    assert render(template, saved, **fields) == render(template, tokenizer, **fields)


def _feature_names() -> list[str]:
    from llmbt.signals_cache.scoring.features import DECIMALS

    return list(DECIMALS)


def test_the_bench_times_both_processes_and_refuses_a_run_that_called_the_model(monkeypatch):
    from llmbt.experiments.bench import cached

    bench = cached.CachedRunBench(cache_dir="/tmp/x", repeats=3)
    assert cached.run_args(bench, "sma_cross")[3:] == ["run", "--strategy", "sma_cross", "--data",
                                                      "sample:GOOG", "--no-report", "--start",
                                                      "2012-06-01"]
    assert cached.run_args(bench, "llm_sentiment")[-4:] == ["--model", "smollm2-135m",
                                                           "--cache-dir", "/tmp/x"]
    seconds = iter([9.0, 2.2, 2.0, 2.4, 2.0, 2.6, 2.0])  # priming run, then (llm, sma) pairs
    monkeypatch.setattr(cached, "timed_run",
                        lambda args: (next(seconds), "model calls: 0 (0 prompts scored"))
    out = cached.bench_cached_run(bench)
    assert out["process_cached_llm_s"] == 2.4 and out["process_sma_cross_s"] == 2.0
    assert out["cached_run_vs_sma_cross"] == pytest.approx(1.2) and out["cached_run_goal"].endswith("met")
    monkeypatch.setattr(cached, "timed_run", lambda args: (1.0, "model calls: 3 (48 prompts scored"))
    with pytest.raises(LlmbtError, match="still called the model"):
        cached.bench_cached_run(bench)


def test_a_failing_run_is_one_error_naming_the_command() -> None:
    from llmbt.experiments.bench.cached import timed_run

    with pytest.raises(LlmbtError, match=r"`-c raise SystemExit\('boom'\)` failed \(boom\)"):
        timed_run([sys.executable, "-c", "raise SystemExit('boom')"])
