"""LSL sinks: decisions for stimulus programs and rigs.

* `LslDecisionSink`: every decision as one JSON string sample (``Markers``), schema
  ``bcistream.decision/1`` (``schemas/decision.schema.json``).
* `LslProbabilitySink`: a numeric outlet per source stream, float32, one channel per class
  (channel labels = class names in the profile's order), irregular rate; one sample per decision
  holding the class probabilities. What a stimulus program plots or thresholds without parsing.
* `LslLabelSink`: a string outlet per source stream carrying only the decided class name of each
  cue-locked decision (what a feedback program shows after a cue).

Every outlet's ``desc`` names the model, version, profile, classes (in order) and units, and each
sample is stamped with the timestamp of the window's last sample (the EEG's clock), so a consumer
lines decisions up with the EEG without knowing the engine's latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bcistream.realtime.records import Decision

__all__ = ["LslDecisionSink", "LslLabelSink", "LslProbabilitySink", "OutletMeta"]


@dataclass(frozen=True)
class OutletMeta:
    """What an outlet's ``desc`` says about the decisions it carries.

    Attributes
    ----------
    model : str
        Model name or URI.
    version : str
        Model version at the start (a hot swap keeps the profile, hence the classes and their order).
    profile : str
        Dataset profile name.
    classes : tuple of str
        Class names in the profile's order.
    """

    model: str
    version: str
    profile: str
    classes: tuple[str, ...]


def _describe(info, meta: OutletMeta | None, units: str, stream_id: str | None, trigger: str) -> None:
    desc = info.desc()
    desc.append_child_value("schema", "bcistream.decision/1")
    desc.append_child_value("trigger", trigger)
    if stream_id is not None:
        desc.append_child_value("stream", stream_id)
    if meta is None:
        return
    desc.append_child_value("model", meta.model)
    desc.append_child_value("model_version", meta.version)
    desc.append_child_value("profile", meta.profile)
    desc.append_child_value("units", units)
    classes = desc.append_child("classes")
    for c in meta.classes:
        classes.append_child_value("class", c)


class LslDecisionSink:
    """Publishes decisions on an LSL marker outlet (one JSON object per sample).

    Parameters
    ----------
    name : str
        Outlet name (type ``Markers``).
    source_id : str, optional
        Stable id so consumers reconnect to a restarted engine.
    meta : OutletMeta, optional
        Model, version, profile and classes for the outlet's ``desc``.
    """

    def __init__(self, name: str = "bcistream-decisions", source_id: str | None = None,
                 meta: OutletMeta | None = None) -> None:
        import pylsl

        self._pylsl = pylsl
        info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                source_id or f"bcistream-{name}")
        _describe(info, meta, "json", None, "hop,cue")
        self.outlet = pylsl.StreamOutlet(info)

    def write(self, decisions: Sequence[Decision]) -> None:
        """Push each decision now (pushthrough: no batching delay)."""
        for d in decisions:
            stamp = d.timestamp if d.timestamp is not None else self._pylsl.local_clock()
            self.outlet.push_sample([d.to_json()], stamp, True)

    def flush(self) -> None:
        """Samples are pushed through on write."""

    def close(self) -> None:
        """Destroy the outlet (consumers see it vanish)."""
        self.outlet = None


class _PerStreamSink:
    """One outlet per source stream (same name, source id ``<name>/<stream>``), made on first use."""

    kind = ""

    def __init__(self, name: str, meta: OutletMeta, streams: Sequence[str] = (),
                 triggers: Sequence[str] = ("hop", "cue")) -> None:
        import pylsl

        if not meta.classes:
            raise ValueError("meta.classes is empty: an outlet needs the class names")
        self._pylsl = pylsl
        self.name = name
        self.meta = meta
        self.triggers = frozenset(triggers)
        self.outlets: dict[str, object] = {}
        for sid in streams:
            self._outlet(sid)

    def _info(self, stream_id: str):
        raise NotImplementedError

    def _outlet(self, stream_id: str):
        outlet = self.outlets.get(stream_id)
        if outlet is None:
            outlet = self.outlets[stream_id] = self._pylsl.StreamOutlet(self._info(stream_id))
        return outlet

    def _stamp(self, d: Decision) -> float:
        return d.timestamp if d.timestamp is not None else self._pylsl.local_clock()

    def flush(self) -> None:
        """Samples are pushed through on write."""

    def close(self) -> None:
        """Destroy the outlets (consumers see them vanish)."""
        self.outlets.clear()


class LslProbabilitySink(_PerStreamSink):
    """Class probabilities as a numeric LSL outlet per source stream.

    Parameters
    ----------
    name : str
        Outlet name (type ``Probabilities``); each source stream gets an outlet of this name with
        source id ``<name>/<stream id>`` and ``desc/stream``.
    meta : OutletMeta
        Model, version, profile and the class names (channel labels, in this order).
    streams : sequence of str, optional
        Source streams whose outlets exist from the start (others appear with their first decision).
    triggers : sequence of str
        Which decisions are published (``"hop"``, ``"cue"``; default both).

    Notes
    -----
    float32, ``len(meta.classes)`` channels (``desc/channels/channel/label`` = class name,
    ``unit`` = ``probability``, ``type`` = ``Probability``), irregular rate. A sample is one
    decision; its timestamp is the window's last EEG sample.
    """

    kind = "Probabilities"

    def _info(self, stream_id: str):
        pylsl = self._pylsl
        info = pylsl.StreamInfo(self.name, self.kind, len(self.meta.classes), pylsl.IRREGULAR_RATE,
                                pylsl.cf_float32, f"{self.name}/{stream_id}")
        _describe(info, self.meta, "probability", stream_id, ",".join(sorted(self.triggers)))
        channels = info.desc().append_child("channels")
        for c in self.meta.classes:
            ch = channels.append_child("channel")
            ch.append_child_value("label", c)
            ch.append_child_value("unit", "probability")
            ch.append_child_value("type", "Probability")
        return info

    def write(self, decisions: Sequence[Decision]) -> None:
        """Push each decision's probabilities in class order."""
        for d in decisions:
            if d.trigger not in self.triggers:
                continue
            row = [float(d.probabilities.get(c, 0.0)) for c in self.meta.classes]
            self._outlet(d.stream_id).push_sample(row, self._stamp(d), True)


class LslLabelSink(_PerStreamSink):
    """The decided class name of each cue-locked decision, as a string outlet per source stream.

    Parameters
    ----------
    name : str
        Outlet name (type ``Markers``), source id ``<name>/<stream id>``.
    meta : OutletMeta
    streams : sequence of str, optional
        Source streams whose outlets exist from the start.
    """

    kind = "Markers"

    def __init__(self, name: str, meta: OutletMeta, streams: Sequence[str] = ()) -> None:
        super().__init__(name, meta, streams, triggers=("cue",))

    def _info(self, stream_id: str):
        pylsl = self._pylsl
        info = pylsl.StreamInfo(self.name, self.kind, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                f"{self.name}/{stream_id}")
        _describe(info, self.meta, "class name", stream_id, "cue")
        return info

    def write(self, decisions: Sequence[Decision]) -> None:
        """Push the label of each cue decision."""
        for d in decisions:
            if d.trigger == "cue":
                self._outlet(d.stream_id).push_sample([d.label], self._stamp(d), True)
