"""The self-contained A/B comparison page, built from the real GOOG sample and two deterministic rules."""

from __future__ import annotations

import base64
import dataclasses
import html
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT
from helpers_reports import BASE, LORA, SECTION_IDS, YEARS, build_page

from llmbt.errors import LlmbtError
from llmbt.reports.compare_page import ComparisonPage, render_comparison_page, write_comparison_page


def section(text: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', text, re.S)
    assert match, f"no section {section_id!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def page(goog) -> ComparisonPage:
    return build_page(goog)


@pytest.fixture(scope="module")
def rendered(page) -> str:
    return render_comparison_page(page)


# --------------------------------------------------------------------------------------------------- tests
def test_sections_in_order_each_with_a_heading(rendered):
    assert re.findall(r'<section id="([^"]+)">', rendered) == SECTION_IDS
    for sid in SECTION_IDS:
        assert "<h2>" in section(rendered, sid)
    assert "<h1>GOOG 2009-2012: mom5 vs sma20</h1>" in section(rendered, "summary")


def test_page_is_self_contained_with_decodable_png_images(rendered):
    sources = re.findall(r'<img [^>]*src="([^"]*)"', rendered)
    assert len(sources) == 5 == rendered.count("<img ")  # equity, drawdowns, folds, signals, calibration
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    for needle in ('src="http', "src='http", 'href="http', "url(http", "@import", "<script", "<iframe"):
        assert needle not in rendered.lower()
    assert len(rendered) < 1_500_000


def test_user_text_is_escaped(page):
    odd = "sma<20> & co"
    swap = {LORA: odd}
    weird = dataclasses.replace(
        page, title="A <b>bold</b> title", metrics=page.metrics.rename(columns=swap),
        returns={swap.get(m, m): r for m, r in page.returns.items()},
        signals={swap.get(m, m): s for m, s in page.signals.items()},
        calibration={swap.get(m, m): c for m, c in page.calibration.items()},
        folds=page.folds.assign(model=page.folds["model"].replace(swap)),
        significance=['Sharpe of "sma<20> & co" <script>alert(1)</script> is higher.'],
        notes={"<key>": "a&b"})
    text = render_comparison_page(weird)
    assert "<script" not in text and "<b>" not in text and odd not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section(text, "summary")
    assert "A &lt;b&gt;bold&lt;/b&gt; title" in text
    assert "<td>&lt;key&gt;</td><td>a&amp;b</td>" in section(text, "summary")
    assert f"<th>{html.escape(odd)}</th>" in section(text, "metrics")
    assert section(text, "folds").count(f"<td>{html.escape(odd)}</td>") == len(YEARS)


def test_significance_and_run_notes_are_in_the_summary(page, rendered):
    summary = section(rendered, "summary")
    assert '<ul class="significance">' in summary
    assert f"<li>{html.escape(page.significance[0])}</li>" in summary
    for key, value in page.notes.items():
        assert f"<td>{key}</td><td>{value}</td>" in summary


def test_metric_values_are_formatted_and_the_best_is_bold(page):
    metrics = page.metrics.copy()
    metrics.loc["Hit rate", :] = [0.5, math.nan, 0.25]
    text = section(render_comparison_page(dataclasses.replace(page, metrics=metrics)), "metrics")
    rows = dict(re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", text))
    assert set(rows) == set(metrics.index)
    sharpe_cells = re.findall(r"<td[^>]*>([^<]*)</td>", rows["Sharpe"])
    assert sharpe_cells == [f"{v:.3f}" for v in metrics.loc["Sharpe"]]
    best = metrics.loc["Sharpe"].idxmax()
    assert f'<td class="best">{metrics.loc["Sharpe", best]:.3f}</td>' in rows["Sharpe"]
    shallowest = metrics.loc["Max drawdown %"].abs().idxmin()
    assert f'<td class="best">{metrics.loc["Max drawdown %", shallowest]:.3f}</td>' in rows["Max drawdown %"]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", rows["Hit rate"]) == ["0.500", "–", "0.250"]


def test_folds_table_lists_every_fold_and_model(page, rendered):
    text = section(rendered, "folds")
    assert text.count("<img ") == 1
    body = text.split("<tbody>", 1)[1]
    assert body.count("<tr>") == len(page.folds) == 2 * len(YEARS)
    first = page.folds.iloc[0]
    assert (f"<td>1</td><td>{BASE}</td><td>{first.test_start:%Y-%m-%d}</td><td>{first.test_end:%Y-%m-%d}</td>"
            f"<td>{first.sharpe:.3f}</td><td>{100 * first.total_return:.2f}</td>") in body
    assert first.test_start.year == 2009 and first.test_end.year == 2009


def test_degenerate_inputs_render_no_data_notes(page):
    nan_signal = pd.Series(np.nan, index=page.prices.index)
    degenerate = dataclasses.replace(
        page, signals={BASE: nan_signal, LORA: page.signals[LORA]},
        folds=page.folds[page.folds["fold"] == 1],
        calibration={BASE: pd.DataFrame(), LORA: page.calibration[LORA].iloc[0:0]}, significance=[], notes={})
    text = render_comparison_page(degenerate)
    assert re.findall(r'<section id="([^"]+)">', text) == SECTION_IDS
    assert f"No data: no signals from {BASE}." in section(text, "signals")
    assert section(text, "signals").count("<img ") == 1  # the other model is still drawn
    assert "No data" in section(text, "calibration") and "<img " not in section(text, "calibration")
    assert section(text, "folds").split("<tbody>", 1)[1].count("<tr>") == 2
    assert "No data" in section(text, "summary")


def test_entirely_empty_inputs_render_no_data_everywhere():
    empty = ComparisonPage(title="empty", metrics=pd.DataFrame(), returns={}, prices=pd.Series(dtype=float),
                           signals={"m": pd.Series(dtype=float)}, folds=pd.DataFrame(), calibration={},
                           significance=[])
    text = render_comparison_page(empty)
    assert "<img " not in text
    for sid in SECTION_IDS:
        assert "No data" in section(text, sid), sid


@pytest.mark.parametrize("change, match", [
    (lambda p: {"returns": {**p.returns, BASE: p.returns[BASE].reset_index(drop=True)}},
     r"returns\['mom5'\] has a RangeIndex, not a DatetimeIndex: index it by bar time"),
    (lambda p: {"folds": p.folds.drop(columns=["sharpe", "trades"])},
     r"folds is missing column\(s\) sharpe, trades: it needs one row per \(fold, model\)"),
    (lambda p: {"calibration": {LORA: p.calibration[LORA].rename(columns={"hit_rate": "hits"})}},
     r"calibration\['sma20'\] is missing column\(s\) hit_rate"),
    (lambda p: {"prices": p.prices.to_numpy()},
     r"prices must be a pandas Series indexed by time, got ndarray"),
    (lambda p: {"metrics": {"Sharpe": 1.0}}, r"metrics must be a pandas DataFrame .* got dict"),
])
def test_bad_inputs_raise_a_helpful_error(page, change, match):
    with pytest.raises(LlmbtError, match=match):
        render_comparison_page(dataclasses.replace(page, **change(page)))


def test_write_comparison_page_writes_the_rendered_html(page, rendered, tmp_path):
    out = write_comparison_page(tmp_path / "sub" / "compare.html", page)
    assert out == tmp_path / "sub" / "compare.html"
    assert out.read_text(encoding="utf-8") == rendered
    with pytest.raises(LlmbtError, match=r"must end in \.html"):
        write_comparison_page(tmp_path / "compare.png", page)


def test_import_is_side_effect_free_and_rendering_leaves_no_pyplot_state(tmp_path):
    code = (
        "import sys, pandas as pd\n"
        "import llmbt.reports.compare_page as cp\n"
        "print('mpl-at-import', 'matplotlib' in sys.modules)\n"
        "idx = pd.date_range('2020-01-01', periods=30, freq='D')\n"
        "r = pd.Series(0.001, index=idx)\n"
        "metrics = pd.DataFrame({'a': [1.0]}, index=['Sharpe'])\n"
        "page = cp.ComparisonPage('t', metrics, {'a': r}, 100 + r.cumsum(), {'a': r * 100},"
        " pd.DataFrame(), {}, [])\n"
        "assert '<img ' in cp.render_comparison_page(page)\n"
        "print('pyplot-after-render', 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "mpl-at-import False" in out.stdout
    assert "pyplot-after-render False" in out.stdout


def test_best_column_knows_which_way_is_better():
    from llmbt.reports.compare_page import _best_column

    row = pd.Series({"lora": 0.17, "base": 0.59})
    assert _best_column("Calibration error (ECE)", row) == "lora"
    assert _best_column("ms per scored item", row) == "lora"
    assert _best_column("Sharpe", row) == "base"
    assert _best_column("Mean confidence", row) is None  # neither direction is better
