"""JSON Schemas of what bcistream publishes (``decision.schema.json``: decisions on Kafka, LSL, JSONL)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["decision_schema"]


def decision_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a decision record (`bcistream.realtime.records.Decision`)."""
    return json.loads(resources.files(__name__).joinpath("decision.schema.json").read_text())
