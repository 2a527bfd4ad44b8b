"""Evaluation: metrics, differential expression, calibration and reports."""
