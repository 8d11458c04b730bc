"""The package layout: one ``llmbt`` namespace, imports that point down the layers and never in a
circle, a wheel with only ``llmbt/``, and a ``bt`` group that has every command however it is imported."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from itertools import pairwise
from pathlib import Path

import pytest
from helpers import ROOT

OLD_TOPS = ("engine", "feeds", "reports", "strategies", "signals_cache", "experiments", "cli")
SKIP_DIRS = {"build", "dist", "out", "node_modules", "datasets", "adapters"}

# Lowest first. A module may import its own layer and the ones below; the longest prefix decides.
LAYERS = {
    "errors": 0, "paths": 0, "__init__": 0,
    "feeds": 1,
    "signals_cache": 2,
    "strategies": 3,
    "engine": 4,  # the backtester
    "experiments": 5,  # what is built on it: walk-forward, arms, audits, the ledger, studies, benchmarks
    "reports": 6,  # statistics and pages from results
    "cli": 7, "__main__": 7,  # on top: nothing imports it
}
# Third-party packages that belong to one layer: importing them from below is an upward import.
EXTERNAL_LAYERS = {"click": 7}
# Couplings the layer order allows but the design does not: (importer prefix, imported prefix, why).
FORBIDDEN = [
    ("engine.config", "signals_cache", "config validation reaches into the prompts"),
    ("engine", "strategies.llm_sentiment", "engine code borrows symbol_of from a strategy"),
    ("experiments.arms", "experiments.walkforward", "arms.py uses walk-forward internals"),
    ("reports", "feeds", "a report draws the data the engine returns; it loads none"),
    *[("reports", runs, "a report computes and renders from results; it never runs a backtest or "
       "a model") for runs in ("engine.runner", "engine.portfolio_run", "engine.signals",
                                "experiments.arms", "experiments.universe_arms", "experiments.news_eval",
                                "experiments.walkforward", "experiments.universe_wf", "experiments.audit",
                                "experiments.jitter", "experiments.studies", "experiments.bench",
                                "signals_cache.signals", "signals_cache.universe",
                                "signals_cache.scoring", "signals_cache.model.loading")],
    ("strategies", "signals_cache.model", "a strategy does model I/O"),
    ("strategies", "signals_cache.signals", "a strategy computes (scores) its own signals"),
]
# Violations present when the layout moved (issue 12), each still to be fixed: (importer, imported).
# test_known_violations_are_still_there fails once one is fixed, so this list only shrinks.
KNOWN: set[tuple[str, str]] = set()


def _skipped(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts[:-1]
    return any(p.startswith(".") or p in SKIP_DIRS or p.endswith(".egg-info") or "venv" in p for p in parts)


def package_modules() -> dict[str, Path]:
    """Every module of the llmbt package, by its name inside llmbt (``cli.base``, ``errors``)."""
    mods = {p.stem: p for p in ROOT.glob("*.py")}
    for top in OLD_TOPS:
        for path in (ROOT / top).rglob("*.py"):
            if not _skipped(path):
                mods[".".join(path.relative_to(ROOT).with_suffix("").parts)] = path
    return {m.removesuffix(".__init__"): p for m, p in mods.items()}


def python_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not _skipped(p)]


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module inside llmbt, or a third-party top-level name; line) for every import."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = ["llmbt", *(p for p in package.split(".") if p)]
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            names = [f"{mod}.{a.name}" if f"{mod}.{a.name}".removeprefix("llmbt.") in known else mod
                     for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
            inner = name.removeprefix("llmbt.") if name.startswith("llmbt.") else None
            out.append((inner if inner is not None else name.split(".")[0], node.lineno))
    return out


def _rank(module: str) -> int | None:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if best is None else LAYERS[best]


def _under(module: str, prefix: str) -> bool:
    return prefix == "" or module == prefix or module.startswith(prefix + ".")


def violations(modules: dict[str, Path]) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> ["path:line  why"] for every upward import and forbidden coupling."""
    known = set(modules)
    found: dict[tuple[str, str], list[str]] = {}
    for module, path in sorted(modules.items()):
        for imported, line in imports_of(module, path, known):
            where = f"{path.relative_to(ROOT)}:{line}"
            low = _rank(module)
            high = _rank(imported) if imported in known else EXTERNAL_LAYERS.get(imported)
            if low is not None and high is not None and high > low:
                found.setdefault((module, imported), []).append(f"{where}  imports a higher layer")
            for importer, target, why in FORBIDDEN:
                if _under(module, importer) and _under(imported, target):
                    found.setdefault((module, imported), []).append(f"{where}  {why}")
    return found


def test_no_module_imports_the_old_top_level_names():
    bad = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{path.relative_to(ROOT)}:{node.lineno} {n}"
                    for n in names if n.split(".")[0] in OLD_TOPS]
    assert not bad, "import them as llmbt.<name>:\n" + "\n".join(bad)


def test_no_string_or_doc_names_an_old_top_level_module():
    """Monkeypatch targets, ``python -m`` lines, subprocess code and install files use llmbt.*."""
    tops = "|".join(OLD_TOPS)
    dotted = re.compile(rf"(?<![\w.])(?:python -m |import |from )?((?:{tops})(?:\.\w+)+)")
    bad = []
    files = [p for p in python_files() if p.name != "test_layout.py"]
    files += [ROOT / n for n in ("setup.cfg", "pyproject.toml", "Makefile", "README.md", "mkdocs.yml")
              if (ROOT / n).exists()]
    files += sorted((ROOT / "docs").rglob("*.md"))
    for path in files:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in dotted.finditer(line):
                first_two = match.group(1).split(".")[:2]
                target = ROOT.joinpath(*first_two)
                if target.with_suffix(".py").exists() or (target / "__init__.py").exists():
                    bad.append(f"{path.relative_to(ROOT)}:{lineno} {match.group(0)}")
    assert not bad, "write llmbt.<module>:\n" + "\n".join(bad)


@pytest.mark.skipif(not (ROOT / ".git").exists() or not shutil.which("git"), reason="not a git checkout")
def test_git_grep_finds_no_old_import():
    pattern = r"^\s*(from|import) ({})\b".format("|".join(OLD_TOPS))
    out = subprocess.run(["git", "grep", "-nE", pattern], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1 and not out.stdout, out.stdout


def test_imports_point_down_the_layers():
    found = violations(package_modules())
    new = {k: v for k, v in found.items() if k not in KNOWN}
    lines = "\n".join(w for ws in new.values() for w in ws)
    assert not new, ("data flows errors/paths -> feeds -> signals_cache -> strategies -> engine -> "
                     "experiments -> reports, the CLI on top:\n" + lines)


def test_known_violations_are_still_there():
    fixed = KNOWN - set(violations(package_modules()))
    assert not fixed, f"fixed, delete from KNOWN in {Path(__file__).name}: {sorted(fixed)}"


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, str]]:
    """importer -> {imported module inside llmbt: "path:line" of the import}, for every import in the
    file: module level, inside functions and under ``if TYPE_CHECKING`` alike. An ``__init__`` counts
    like any module (its re-exports are edges too); the parent packages an import runs implicitly do not.
    """
    known = set(modules)
    graph: dict[str, dict[str, str]] = {}
    for module, path in sorted(modules.items()):
        edges = graph.setdefault(module, {})
        for imported, line in imports_of(module, path, known):
            if imported in known and imported != module:
                edges.setdefault(imported, f"{path.relative_to(ROOT)}:{line}")
    return graph


def _reach(graph: dict[str, dict[str, str]], start: str) -> dict[str, str | None]:
    """Every module reachable from ``start`` -> the module it was first reached from (shortest paths)."""
    seen: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        for nxt in graph.get(node, {}):
            if nxt not in seen:
                seen[nxt] = node
                queue.append(nxt)
    return seen


def import_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """A shortest cycle through each module that sits on one, as a chain ``[a, b, ..., a]``, each once."""
    cycles, done = [], set()
    for module in sorted(graph):
        back = [m for m in graph[module] if module in _reach(graph, m)]
        if not back:
            continue
        chains = []
        for first in back:
            prev, node, chain = _reach(graph, first), module, [module]
            while node != first:
                node = prev[node]
                chain.append(node)
            chains.append([module, *reversed(chain)])
        chain = min(chains, key=len)
        if frozenset(chain) not in done:
            done.add(frozenset(chain))
            cycles.append(chain)
    return cycles


def _chain_text(graph: dict[str, dict[str, str]], chain: list[str]) -> str:
    steps = "\n".join(f"    {a} -> {b}  ({graph[a][b]})" for a, b in pairwise(chain))
    return " -> ".join(chain) + "\n" + steps


def test_no_import_cycles():
    """Files import one another in one direction only; a lazy import inside a function still ties two
    files together, so it counts. Move the shared code down or pass a function in instead."""
    graph = import_graph(package_modules())
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_chain_text(graph, c) for c in cycles)


def test_the_cycle_check_catches_a_lazy_import(tmp_path):
    (tmp_path / "a.py").write_text("from llmbt.b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    from llmbt.c import g\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from llmbt import a\n")
    (tmp_path / "d.py").write_text("from llmbt import a\n")  # leads into the cycle, is not on it
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        graph = import_graph({n: tmp_path / f"{n}.py" for n in "abcd"})
    finally:
        ROOT = old
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    assert "b.py:2" in _chain_text(graph, ["a", "b", "c", "a"])


def private_imports(mods: dict[str, Path]) -> set[tuple[str, str, str]]:
    """(importer, imported module, name) of every ``from llmbt.x import _name`` across modules."""
    found = set()
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llmbt."):
                target = node.module.removeprefix("llmbt.")
                found |= {(name, target, a.name) for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__") and target != name}
    return found


def test_no_module_imports_another_modules_private_names():
    found = private_imports(package_modules())
    assert not found, ("give these a public name where they are defined:\n"
                       + "\n".join(map(str, sorted(found))))



def test_the_private_import_check_catches_one(tmp_path):
    (tmp_path / "a.py").write_text("from llmbt.reports.stats import _hidden, shown\n")
    (tmp_path / "b.py").write_text("from llmbt.b import _own\n")  # its own private names are fine
    found = private_imports({"a": tmp_path / "a.py", "b": tmp_path / "b.py"})
    assert found == {("a", "reports.stats", "_hidden")}

@pytest.mark.parametrize("lower, upper, code", [
    ("feeds.prices", "engine.runner", "def f():\n    from llmbt.engine.runner import run_backtest\n"),
    # strategies sit above signals_cache, yet may not load a model or score their own signals
    ("strategies.mine", "signals_cache.model.loading",
     "from llmbt.signals_cache.model.loading import load_model\n"),
])
def test_the_layer_check_catches_a_forbidden_import(tmp_path, lower, upper, code):
    low = tmp_path / lower.split(".")[0] / (lower.split(".")[-1] + ".py")
    low.parent.mkdir()
    low.write_text(code)
    (tmp_path / "upper.py").write_text("")
    mods = {lower: low, upper: tmp_path / "upper.py"}
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        found = violations(mods)
    finally:
        ROOT = old
    assert (lower, upper) in found


def test_setup_cfg_lists_every_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    on_disk = {"llmbt"} | {"llmbt." + m for m, p in package_modules().items() if p.name == "__init__.py"
                           and m != "__init__"}
    assert listed == on_disk, f"setup.cfg packages: add {on_disk - listed}, drop {listed - on_disk}"
    assert cfg["options"]["package_dir"].split() == ["llmbt", "=", "."]


def test_every_command_is_registered_without_side_effect_imports():
    code = "from llmbt.cli import cli; print(' '.join(sorted(cli.commands)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    commands = set(out.stdout.split())
    table = (ROOT / "docs" / "reference" / "commands.md").read_text()
    documented = set(re.findall(r"^\| `bt ([\w-]+)", table, flags=re.M))
    assert {"run", "walkforward", "compare", "dataset", "finetune", "evaluate", "study"} <= commands
    assert len(documented) > 10 and documented <= commands, \
        f"in docs/reference/commands.md, not in `bt`: {documented - commands}"


def test_python_dash_m_llmbt_and_nothing_else_installed_from_here(tmp_path):
    out = subprocess.run([sys.executable, "-m", "llmbt", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "walkforward" in out.stdout, out.stderr
    code = ("import importlib.util as u\n"
            f"for n in {OLD_TOPS!r}:\n"
            "    s = u.find_spec(n)\n"
            "    print(n, s.origin if s else None)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    leaked = [line for line in out.stdout.splitlines() if str(ROOT) in line]
    assert not leaked, f"importable at the top level from this checkout: {leaked}"


def _source_copy(dest: Path) -> Path:
    if (ROOT / ".git").exists() and shutil.which("git"):
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.splitlines()
    else:
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and not _skipped(p)]
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build")
def test_wheel_holds_only_the_llmbt_package(tmp_path):
    """A wheel built from the checkout (about 2 s) holds llmbt/ and its dist-info, nothing else."""
    src = _source_copy(tmp_path / "src")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
           "-w", str(tmp_path / "dist"), str(src)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("llmbt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = next(n.split("/")[0] for n in names if ".dist-info/" in n)
    stray = [n for n in names if not n.startswith(("llmbt/", dist_info + "/"))]
    assert not stray, f"outside llmbt/: {stray}"
    expected = {"llmbt/" + p.relative_to(ROOT).as_posix() for p in package_modules().values()}
    assert expected == {n for n in names if n.startswith("llmbt/")}
    meta = zipfile.ZipFile(wheel)
    assert meta.read(f"{dist_info}/top_level.txt").decode().split() == ["llmbt"]
    assert "bt = llmbt.cli:main" in meta.read(f"{dist_info}/entry_points.txt").decode()
