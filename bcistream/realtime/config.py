"""How the engine decides: hop, triggers, gap policy, history kept."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EngineConfig"]


@dataclass(frozen=True)
class EngineConfig:
    """How the engine decides.

    Parameters
    ----------
    hop_s : float
        Sliding-window hop. Hop windows end at sample ``floor(k * hop_s * sfreq + 0.5)``,
        ``k = 1, 2, ...`` (absolute stream index) and span the profile's window before it.
    triggers : tuple of str
        ``"hop"`` and/or ``"cue"``.
    on_gap : str
        ``"reset"`` (default): after missing samples, restart the filter from zero state and decide
        again once a full window has arrived. ``"continue"``: filter across the gap as if contiguous.
    history_s : float
        How late a cue marker may arrive after its window's samples (ring of running sums).
    swap_preroll_s : float
        Raw samples kept before the window to rebuild filter state after a model swap.
    gap_tolerance_s : float
        Timestamp jitter tolerated (seconds) before a jump counts as missing samples (streams
        without ``seq``) or a clock step; also how far timestamps may disagree with a ``seq`` jump
        before the chunk is refused as corrupt (`bcistream.realtime.tracker`).
    max_gap_s : float
        A ``seq`` jump larger than this with no timestamps to confirm it is a corrupt chunk.
    unit_check_s : float
        Seconds of each stream with undeclared units checked for plausibility as volts before its
        samples count (less than a window: no decision is made on unchecked data); 0: off.
    """

    hop_s: float = 0.25
    triggers: tuple[str, ...] = ("hop", "cue")
    on_gap: str = "reset"
    history_s: float = 4.0
    swap_preroll_s: float = 2.0
    gap_tolerance_s: float = 0.1
    max_gap_s: float = 3600.0
    unit_check_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.hop_s > 0:
            raise ValueError(f"hop_s must be > 0, got {self.hop_s}")
        bad = set(self.triggers) - {"hop", "cue"}
        if bad or not self.triggers:
            raise ValueError(f"triggers must be a non-empty subset of ('hop', 'cue'), got {self.triggers}")
        if self.on_gap not in ("reset", "continue"):
            raise ValueError(f"on_gap must be 'reset' or 'continue', got {self.on_gap!r}")
        if self.gap_tolerance_s < 0 or self.max_gap_s <= 0 or self.unit_check_s < 0:
            raise ValueError("gap_tolerance_s and unit_check_s must be >= 0, max_gap_s > 0")
        if self.history_s < 0 or self.swap_preroll_s < 0:
            raise ValueError("history_s and swap_preroll_s must be >= 0")
