"""The one logging set-up of ``bt`` (-v/-q): levels, where log records go, and transformers'
progress bars tied to it (hidden by default, shown with -v) through transformers' own switch."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmbt.engine.cli import cli
from llmbt.signals_cache import progress
from llmbt.signals_cache.model.loading import ModelSpec, load_model

try:  # the shared tiny-model helpers live in test_model.py
    from test_model import save_tiny, tokenizer_dir  # noqa: F401
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.test_model import save_tiny, tokenizer_dir  # noqa: F401


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
    tmp_path: Path, tokenizer_dir: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
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
    tmp_path: Path, tokenizer_dir: Path  # noqa: F811
) -> None:
    """A fresh ``bt`` process: the set-up does not import transformers, the load still hides the
    bars, and nothing warns (the KV cache keyword, the weights loading)."""
    import subprocess
    import sys

    folder = save_tiny(tmp_path / "tiny", tokenizer_dir)
    code = (
        "import sys, warnings; warnings.simplefilter('error', FutureWarning)\n"
        "from llmbt.engine.cli.logs import setup_logging\n"
        "setup_logging(0)\n"
        "assert 'transformers' not in sys.modules\n"
        "from llmbt.signals_cache.model.loading import ModelSpec, load_model\n"
        f"load_model(ModelSpec(base={str(folder)!r}, device='cpu'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Loading weights" not in out.stderr and "Warning" not in out.stderr, out.stderr
