"""Metrics and report tables."""

from ameli_ray.evaluation.attributes import attribute_prf, attribute_prf_by_source
from ameli_ray.evaluation.metrics import RECALL_KS, linking_metrics, metrics_table

__all__ = ["RECALL_KS", "attribute_prf", "attribute_prf_by_source", "linking_metrics", "metrics_table"]
