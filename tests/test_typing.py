"""The public modules type-check with mypy (configuration: [tool.mypy] in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The Python API users build on: what ``bcistream`` exports and the modules behind it.
PUBLIC_MODULES = [
    "bcistream/__init__.py",
    "bcistream/errors.py",
    "bcistream/settings.py",
    "bcistream/live",
    "bcistream/data/profiles.py",
    "bcistream/data/recording.py",
    "bcistream/data/loader.py",
    "bcistream/data/reader.py",
    "bcistream/pipeline/factory.py",
    "bcistream/pipeline/csp.py",
    "bcistream/pipeline/epochs.py",
    "bcistream/pipeline/fitting.py",
    "bcistream/realtime/config.py",
    "bcistream/realtime/protocols.py",
    "bcistream/realtime/records.py",
    "bcistream/realtime/memory.py",
]


def test_py_typed_ships_with_the_package():
    assert (ROOT / "bcistream" / "py.typed").exists()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.slow
def test_public_modules_type_check():
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
                           "--cache-dir", str(ROOT / ".mypy_cache"), *PUBLIC_MODULES],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success" in done.stdout
