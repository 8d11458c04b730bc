"""Reports: QuantStats tearsheets and metric tables. QuantStats is imported only in this package."""

from llmbt.reports.metrics import METRICS, headline_metrics, metrics_table, print_metrics
from llmbt.reports.tearsheet import write_tearsheet

__all__ = ["METRICS", "headline_metrics", "metrics_table", "print_metrics", "write_tearsheet"]
