"""The documentation site builds with --strict (a broken link or a missing page fails) and its CLI
reference is generated from the commands, so it names every command and flag of today's `bt`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                            "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin",
                                             "HOME": str(out)})
    assert build.returncode == 0, build.stderr[-3000:]
    return out


def test_the_site_builds_strict_with_every_guide(site: Path) -> None:
    guides = sorted(p.stem for p in (ROOT / "docs" / "guides").glob("*.md"))
    assert len(guides) >= 9
    for name in guides:
        assert (site / "guides" / name / "index.html").is_file(), name


def test_the_cli_reference_is_generated_from_the_commands(site: Path) -> None:
    from llmbt.cli import cli

    page = (site / "reference" / "cli" / "index.html").read_text()
    for name in cli.commands:
        assert f"bt {name}" in page, name
    for flag in ("--model-schedule", "--select", "--jitter", "--before-first"):
        assert flag in page, flag


def test_the_readme_stays_short_and_its_commands_write_only_under_out() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "make docs" in readme and "make test" in readme and "make demo" in readme
    code = "\n".join(re.findall(r"```bash\n(.*?)```", readme, flags=re.S))
    targets = re.findall(r"(?:--out|--report|>)\s+(\S+)", code)
    assert targets and all(t.startswith("out/") for t in targets), targets
