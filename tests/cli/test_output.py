"""The one logging set-up of ``bt`` (-v/-q): levels, where log records go, and transformers'
progress bars tied to it (hidden by default, shown with -v) through transformers' own switch."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import save_tiny

from llmbt.cli import cli
from llmbt.signals_cache import progress
from llmbt.signals_cache.model.loading import ModelSpec, load_model


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Each test starts from, and leaves, the logging and progress-bar state it found."""
    from transformers.utils import logging as hf_logging

    monkeypatch.setenv("LLMBT_HOME", str(tmp_path / "home"))
    root, own = logging.getLogger(), logging.getLogger("llmbt")
    saved = (list(root.handlers), root.level, own.level, hf_logging.is_progress_bar_enabled())
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    own.setLevel(saved[2])
    progress.show_transformers_bars(saved[3])
    progress.show_transformers_bars(None)


def bt(*args: str) -> None:
    res = CliRunner().invoke(cli, [*args, "strategies"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("flags", "own", "root"), [
    ((), logging.INFO, logging.WARNING),
    (("-v",), logging.DEBUG, logging.WARNING),
    (("-vv",), logging.DEBUG, logging.DEBUG),
    (("-q",), logging.ERROR, logging.ERROR),
    (("-v", "-q"), logging.INFO, logging.WARNING),
])
def test_flags_set_the_levels(flags: tuple[str, ...], own: int, root: int) -> None:
    bt(*flags)
    assert logging.getLogger("llmbt").level == own
    assert logging.getLogger().level == root


def test_one_handler_however_often_it_is_set_up(capsys: pytest.CaptureFixture[str]) -> None:
    bt()
    bt()
    logging.getLogger("llmbt.engine.test").info("fold 1 done")
    assert capsys.readouterr().err.count("fold 1 done") == 1
    bt("-q")
    logging.getLogger("llmbt.engine.test").warning("only a warning")
    logging.getLogger("llmbt.engine.test").error("a real error")
    err = capsys.readouterr().err
    assert "only a warning" not in err and "a real error" in err


def test_llmbt_bars_follow_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    bt()
    assert progress.bars_wanted(True) and not progress.bars_wanted(False)
    bt("-q")
    assert not progress.bars_wanted(True)


def test_loading_bars_hidden_by_default_shown_with_v(
    tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = save_tiny(tmp_path / "tiny", tokenizer_dir)
    capsys.readouterr()
    bt()
    load_model(ModelSpec(base=str(folder), device="cpu"))
    assert "Loading weights" not in capsys.readouterr().err
    bt("-v")
    load_model(ModelSpec(base=str(folder), device="cpu"))
    assert "Loading weights" in capsys.readouterr().err


def test_bars_hidden_when_transformers_is_imported_after_the_set_up(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    """A fresh ``bt`` process: the set-up does not import transformers, the load still hides the
    bars, and nothing warns (the KV cache keyword, the weights loading)."""
    import subprocess
    import sys

    folder = save_tiny(tmp_path / "tiny", tokenizer_dir)
    code = (
        "import sys, warnings; warnings.simplefilter('error', FutureWarning)\n"
        "from llmbt.cli.logs import setup_logging\n"
        "setup_logging(0)\n"
        "assert 'transformers' not in sys.modules\n"
        "from llmbt.signals_cache.model.loading import ModelSpec, load_model\n"
        f"load_model(ModelSpec(base={str(folder)!r}, device='cpu'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Loading weights" not in out.stderr and "Warning" not in out.stderr, out.stderr


def _scoring_run(tmp_path: Path, *flags: str):
    """``bt [flags] run`` of llm_sentiment on GOOG's 2013 bars, the model a stub that scores
    every prompt from its length (no weights), the signal cache empty."""
    from types import SimpleNamespace

    from helpers_scoring import SMOLLM2_CHATML, SMOLLM2_TOKENS, StubScorer, model_folder

    from llmbt.signals_cache import signals
    from llmbt.signals_cache.model.chat_template import save_chat_template
    tmp_path.mkdir()
    folder = model_folder(tmp_path)
    save_chat_template(SimpleNamespace(chat_template=SMOLLM2_CHATML, special_tokens_map=SMOLLM2_TOKENS),
                       str(folder))
    args = [*flags, "run", "--strategy", "llm_sentiment", "--data", "sample:GOOG", "--start",
            "2013-01-01", "--model", str(folder), "--cache-dir", str(tmp_path / "signals"),
            "--no-report", "--batch-size", "8"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(signals, "LazyScorer", StubScorer)
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return res


def test_scoring_progress_shows_by_default_off_a_terminal_and_not_with_q(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr is no terminal under CliRunner (as in a pipe or CI): plain lines give the prompts
    done of the total, the rate and the time left; -q hides them."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0, raising=False)  # a line every batch
    res = _scoring_run(tmp_path / "default")
    n = int(res.stdout.split("signals: ")[1].split(" bar prompts")[0])
    lines = res.stderr.splitlines()
    assert lines, res.output  # silent before: no bar off a terminal
    assert lines[0] == f"scoring: 0/{n} prompts (0%)"
    middle = re.compile(rf"scoring: 8/{n} prompts \(\d+%\), [\d.]+ prompts/s, about \d:\d\d:\d\d left")
    assert middle.fullmatch(lines[1]), lines
    assert re.fullmatch(rf"scoring: {n}/{n} prompts \(100%\), [\d.]+ prompts/s, done in [\d.]+ s",
                        lines[-1]), lines
    assert len(lines) == 1 + -(-n // 8)  # the first line, then one a batch
    quiet = _scoring_run(tmp_path / "quiet", "-q")
    assert "prompts/s" not in quiet.stderr and "scoring: 0/" not in quiet.output


def test_a_terminal_bar_shows_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    bt()
    bar = progress.progress_bar(True)
    task_id = bar.add_task("scoring", total=10)
    task = bar.tasks[task_id]
    shown = " ".join(str(column(task)) for column in bar.columns if not isinstance(column, str))
    assert "0/10" in shown and "? items/s" in shown and "-:--:--" in shown


def test_the_gguf_conversion_says_when_it_starts_and_ends_not_with_q(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from llmbt.signals_cache.model import loading

    monkeypatch.setenv("COLUMNS", "400")  # one log record, one line
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF not really")
    monkeypatch.setattr(loading, "_convert_gguf", lambda source, out: out.mkdir())
    bt()
    capsys.readouterr()
    loading.gguf_store(gguf, "fake")
    err = capsys.readouterr().err
    assert "converting the model fake (fake.gguf) once to float32 safetensors in" in err
    assert "(~30 s to 4 min; later runs load it in about a second) ..." in err
    assert re.search(r"converted the model fake in \d+ s", err), err
    loading.gguf_store(gguf, "fake")  # converted already: not a word
    assert capsys.readouterr().err == ""
    bt("-q")
    loading.gguf_store(gguf, "other")
    assert "convert" not in capsys.readouterr().err


def test_a_repeated_warning_reaches_the_terminal_once_per_command() -> None:
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from llmbt.cli.logs import setup_logging\n"
        "setup_logging(0)\n"
        "log = logging.getLogger('llmbt.feeds.long_format')\n"
        "for _ in range(3):\n"
        "    log.warning('prices %r: dropped %d bars', 'p.csv', 11)\n"
        "log.warning('prices %r: dropped %d bars', 'other.csv', 2)\n"
        "log.error('failed'); log.error('failed')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("dropped 11 bars") == 1 and out.stderr.count("dropped 2 bars") == 1
    assert out.stderr.count("failed") == 2  # only warnings are folded


@pytest.mark.parametrize(("verbosity", "shown"), [(0, False), (1, True)])
def test_bitsandbytes_kernel_download_noise_shows_only_with_v(verbosity: int, shown: bool) -> None:
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from llmbt.cli.logs import setup_logging\n"
        f"setup_logging({verbosity})\n"
        "logging.getLogger('bitsandbytes.backends.cpu.ops').warning('Failed to load CPU gemm_4bit')\n"
        "logging.getLogger('transformers.x').warning('another library warns')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert ("Failed to load CPU gemm_4bit" in out.stderr) is shown
    assert "another library warns" in out.stderr  # other libraries' warnings still show
