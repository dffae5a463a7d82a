"""Dataset profiles, recording loaders and the synthetic generator."""

from bcistream.data.profiles import BUILTIN_PROFILES, Profile, load_profile
from bcistream.data.recording import Cue, Recording

__all__ = ["BUILTIN_PROFILES", "Cue", "Profile", "Recording", "load_profile"]
