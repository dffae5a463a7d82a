"""Fitting, evaluation, tuning, tracking, registry and promotion."""
