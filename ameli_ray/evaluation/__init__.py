"""Metrics and report tables."""

from ameli_ray.evaluation.metrics import RECALL_KS, linking_metrics, metrics_table

__all__ = ["RECALL_KS", "linking_metrics", "metrics_table"]
