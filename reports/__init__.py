"""Reports: QuantStats tearsheets and metric tables. QuantStats is imported only in this package."""

from reports.metrics import METRICS, headline_metrics, metrics_table, print_metrics
from reports.tearsheet import write_tearsheet

__all__ = ["METRICS", "headline_metrics", "metrics_table", "print_metrics", "write_tearsheet"]
