"""The portfolio pages: the QuantStats tearsheet plus a sibling signal page, linked both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmbt.errors import LlmbtError
from llmbt.reports.portfolio_page import signal_page_path, write_portfolio_page
from llmbt.reports.signal import signal_report


def small_report():
    dates = pd.date_range("2024-01-01", periods=12, freq="B", tz="UTC")
    r = np.array([[((3 * j + 5 * t) % 7 - 3) / 100 for j in range(6)] for t in range(12)])
    open_ = pd.DataFrame(100 * np.cumprod(1 + r, axis=0), index=dates, columns=[f"S{j}" for j in range(6)])
    return signal_report(open_ / open_.shift(1), open_, horizons=(1, 2), quantiles=3, min_names=3)


CONTRIB = pd.DataFrame({"pnl": [120.0, -30.0], "commission": [1.5, 2.0], "fills": [4, 6],
                        "share": [1.33, -0.33]}, index=pd.Index(["AAPL", "MSFT"], name="symbol"))


def test_page_writes_the_tearsheet_and_the_signal_page(goog, tmp_path: Path) -> None:
    returns = goog["close"].pct_change().dropna().iloc[-120:].rename("Portfolio")
    sheet, page = write_portfolio_page(tmp_path / "run.html", returns=returns,
                                       benchmark=(returns * 0.5).rename("Equal weight"),
                                       report=small_report(), contrib=CONTRIB)
    assert (sheet, page) == (tmp_path / "run.html", tmp_path / "run_signal.html")
    text = page.read_text()
    assert "Information coefficient" in text and "top-bottom" in text and "rank autocorrelation" in text
    assert "<td>120.00</td>" in text and "total (2)" in text and 'href="run.html"' in text
    sheet_text = sheet.read_text()
    assert "Equal weight" in sheet_text and 'href="run_signal.html"' in sheet_text


def test_bad_inputs_write_nothing(tmp_path: Path) -> None:
    returns = pd.Series([0.01, -0.02], index=pd.date_range("2024-01-01", periods=2), name="P")
    with pytest.raises(LlmbtError, match=r"lacks columns \['share'\]"):
        write_portfolio_page(tmp_path / "a.html", returns=returns, benchmark=None, report=small_report(),
                             contrib=CONTRIB.drop(columns="share"))
    with pytest.raises(LlmbtError, match="report must be a SignalReport"):
        write_portfolio_page(tmp_path / "a.html", returns=returns, benchmark=None, report=None,
                             contrib=CONTRIB)
    with pytest.raises(LlmbtError, match=r"must end in \.html"):
        write_portfolio_page(tmp_path / "a.txt", returns=returns, benchmark=None, report=small_report(),
                             contrib=CONTRIB)
    assert not list(tmp_path.iterdir())
    assert signal_page_path("out/x.htm") == Path("out/x_signal.htm")
