"""Write small XDF files by the format's specification (pyxdf only reads).

Spec (https://github.com/sccn/xdf/wiki/Specifications): magic ``XDF:``, then chunks
``[NumLengthBytes][Length][Tag uint16][Content]``; Length counts the tag and the content. Tags:
1 FileHeader (XML), 2 StreamHeader (uint32 StreamId + XML), 3 Samples (StreamId + samples),
4 ClockOffset (StreamId + collection time + offset, doubles), 6 StreamFooter (StreamId + XML).
A sample is ``[TimeStampBytes 0|8][time stamp double][values]``; a string value is
``[NumLengthBytes][Length][bytes]``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np


def _varlen(n: int) -> bytes:
    if n < 256:
        return b"\x01" + struct.pack("<B", n)
    if n < 2**32:
        return b"\x04" + struct.pack("<I", n)
    return b"\x08" + struct.pack("<Q", n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


@dataclass
class XdfStream:
    """One stream: numeric (``data`` shape (n_samples, n_channels)) or string markers."""

    name: str
    type: str
    srate: float
    stamps: np.ndarray
    data: np.ndarray | None = None
    markers: list[str] | None = None
    labels: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)
    footer: bool = True

    def header(self) -> str:
        fmt = "string" if self.markers is not None else "float32"
        n_ch = 1 if self.markers is not None else self.data.shape[1]
        chans = "".join(
            f"<channel><label>{escape(lab)}</label><unit>{escape(unit)}</unit><type>{self.type}</type>"
            "</channel>" for lab, unit in zip(self.labels, self.units or [""] * len(self.labels),
                                             strict=True))
        desc = f"<desc><channels>{chans}</channels></desc>" if chans else "<desc/>"
        return (f'<?xml version="1.0"?><info><name>{escape(self.name)}</name><type>{self.type}</type>'
                f"<channel_count>{n_ch}</channel_count><nominal_srate>{self.srate:g}</nominal_srate>"
                f"<channel_format>{fmt}</channel_format><source_id>{escape(self.name)}-src</source_id>"
                f"{desc}</info>")


def _samples(sid: int, stream: XdfStream, start: int, stop: int) -> bytes:
    body = bytearray(struct.pack("<I", sid))
    body += _varlen(stop - start)
    for k in range(start, stop):
        body += b"\x08" + struct.pack("<d", float(stream.stamps[k]))
        if stream.markers is not None:
            text = stream.markers[k].encode()
            body += _varlen(len(text)) + text
        else:
            body += np.asarray(stream.data[k], dtype="<f4").tobytes()
    return _chunk(3, bytes(body))


def write_xdf(path: Path, streams: list[XdfStream], chunk: int = 500) -> Path:
    """Write ``streams`` to ``path`` (header, samples in chunks, clock offsets, footers)."""
    out = bytearray(b"XDF:")
    out += _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, s in enumerate(streams, start=1):
        out += _chunk(2, struct.pack("<I", sid) + s.header().encode())
    for sid, s in enumerate(streams, start=1):
        n = len(s.stamps)
        for start in range(0, n, chunk):
            out += _samples(sid, s, start, min(n, start + chunk))
        for t, off in s.clock_offsets:
            out += _chunk(4, struct.pack("<I", sid) + struct.pack("<dd", t, off))
    for sid, s in enumerate(streams, start=1):
        if not s.footer:
            continue
        n = len(s.stamps)
        first, last = (float(s.stamps[0]), float(s.stamps[-1])) if n else (0.0, 0.0)
        xml = (f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp>'
               f"<last_timestamp>{last}</last_timestamp><sample_count>{n}</sample_count></info>")
        out += _chunk(6, struct.pack("<I", sid) + xml.encode())
    path = Path(path)
    path.write_bytes(bytes(out))
    return path


def xdf_from_raw(path: Path, raw, *, unit: str = "microvolts", scale: float = 1e6,
                 clock_offset: float = 0.0, footer: bool = True, t0: float = 1000.0,
                 marker_text: dict[str, str] | None = None) -> Path:
    """An XDF file holding ``raw`` as an EEG stream and its annotations as a marker stream.

    Samples are written in ``unit`` (``scale`` times volts). ``clock_offset`` is recorded for the
    EEG stream, whose time stamps are then on a clock ``clock_offset`` seconds behind the marker
    stream's, as LabRecorder stores two machines' streams; pyxdf adds the offset back.
    ``marker_text`` maps annotation descriptions to the marker strings written (others dropped).
    """
    sfreq = float(raw.info["sfreq"])
    n = raw.n_times
    stamps = t0 + np.arange(n) / sfreq
    seconds = n / sfreq
    offsets = [(float(t0 - clock_offset + k), clock_offset) for k in range(0, int(seconds) + 5, 5)]
    eeg = XdfStream("amp1", "EEG", sfreq, stamps - clock_offset,
                    data=(raw.get_data() * scale).T.astype(np.float32), labels=list(raw.ch_names),
                    units=[unit] * len(raw.ch_names), clock_offsets=offsets, footer=footer)
    times, texts = [], []
    for onset, desc in zip(raw.annotations.onset, raw.annotations.description, strict=True):
        text = (marker_text or {}).get(str(desc), None if marker_text else str(desc))
        if text is not None:
            times.append(t0 + float(onset) - raw.first_time)
            texts.append(text)
    markers = XdfStream("cues", "Markers", 0.0, np.array(times), markers=texts,
                        clock_offsets=[(float(t0 + k), 0.0) for k in range(0, int(seconds) + 5, 5)])
    return write_xdf(path, [eeg, markers])
