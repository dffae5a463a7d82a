"""Session-wide test environment: loopback-only LSL, no telemetry, caches under a temp folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="bcistream-tests-"))
_LSL_CFG = _TMP / "lsl_api.cfg"
# LSL must never leave loopback in tests (DESIGN.md §4).
_LSL_CFG.write_text(
    "[ports]\nIPv6 = disable\nPortRange = 1024\n"
    "[multicast]\nResolveScope = machine\nAddressesOverride = {127.0.0.1}\n"
    "Interfaces = {127.0.0.1}\nTTLOverride = 0\n"
    "[lab]\nKnownPeers = {127.0.0.1}\n"
)
os.environ["LSLAPICFG"] = str(_LSL_CFG)
for key, value in {
    "MPLCONFIGDIR": str(_TMP / "mpl"),
    "XDG_CACHE_HOME": str(_TMP / "cache"),
    "MPLBACKEND": "Agg",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "BENTOML_HOME": str(_TMP / "bentoml"),
    "WANDB_MODE": "offline",
    "WANDB_DIR": str(_TMP / "wandb"),
    "WANDB_CONFIG_DIR": str(_TMP / "wandb-config"),
    "WANDB_CACHE_DIR": str(_TMP / "wandb-cache"),
    "WANDB_SILENT": "true",
    "MNE_LOGGING_LEVEL": "WARNING",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ[key] = value

DATA = Path(__file__).parent / "data"

# Real-broker fixtures (tansu Kafka, moto S3) shared by the streaming tests.
pytest_plugins = ["tests.brokers", "tests.stream_fixtures"]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The 2a-shaped GDF fixtures copied from shared/fixtures (see data/FIXTURES.txt)."""
    return DATA
