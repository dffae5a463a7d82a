"""README and docs/ agree with each other and with the code: the Kafka wire header, the marker
topic's schema, class order in example answers (the profile's order, never alphabetical), the
recording formats /classify_file takes and the defaults of the Configuration table."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from bcistream.data.profiles import load_profile
from bcistream.streamer.wire import HEADER, WIRE_VERSION

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _wire_section(text: str) -> tuple[str, list[tuple[int, str]]]:
    """The wire format's heading line and its table rows ``(offset, type)``."""
    start = text.index("Wire format of `eeg.raw`")
    head = text[start:text.index("\n", start)]
    rows = []
    for line in text[start:].split("| offset | type | field |", 1)[1].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((int(cells[0]), cells[1]))
    return head + text[start:start + 400], rows


def _header_layout() -> list[tuple[int, str]]:
    """``(offset, type)`` of every field of the code's header, then the payload's offset."""
    names = {"4s": "4 bytes", "B": "uint8", "H": "uint16", "I": "uint32", "Q": "uint64", "d": "float64"}
    out, offset = [], 0
    for code in re.findall(r"\d*[a-zA-Z]", HEADER.format.lstrip("<")):
        out.append((offset, names[code]))
        offset += struct.calcsize("<" + code)
    return out


@pytest.mark.parametrize("path", [ROOT / "README.md", ROOT / "docs" / "streaming.md"], ids=lambda p: p.name)
def test_wire_format_tables_match_the_code(path):
    prose, rows = _wire_section(path.read_text())
    assert f"version {WIRE_VERSION}" in prose and f"{HEADER.size}-byte" in prose
    assert rows[:-1] == _header_layout()
    assert rows[-1][0] == HEADER.size  # the samples start right after the header


def _markers_value(path: Path) -> str:
    row = next(ln for ln in path.read_text().splitlines() if ln.startswith("| `eeg.markers` |"))
    return re.split(r"(?<!\\)\|", row)[3].strip()  # cells split at unescaped pipes


def test_marker_topic_schema_is_the_same_in_readme_and_docs():
    readme, docs = _markers_value(ROOT / "README.md"), _markers_value(ROOT / "docs" / "streaming.md")
    assert readme == docs and '"session"' in readme


def test_example_answers_list_classes_in_profile_order():
    order = list(load_profile(None).class_names)
    found = 0
    for path in DOCS:
        for m in re.finditer(r'"classes": \[([^\]]*)\]', path.read_text()):
            classes = re.findall(r'"([^"]+)"', m.group(1))
            if set(classes) == set(order):
                found += 1
                assert classes == order, f"{path.name}: {classes} (profile order: {order})"
    assert found >= 2


def test_classify_file_docs_name_every_format_the_service_takes(capsys):
    """The service takes every suffix the loaders read (XDF included): the docs once said
    GDF/EDF/BDF/FIF only, and the CLI's help too."""
    from bcistream.cli import main
    from bcistream.data.loader import RECORDING_SUFFIXES

    text = (ROOT / "docs" / "serving.md").read_text()
    section = text[text.index("### POST /classify_file"):text.index("### POST /classify_features")]
    main(["classify", "--help"])
    help_text = capsys.readouterr().out
    for suffix in RECORDING_SUFFIXES:
        name = suffix.split(".")[1].upper()  # .fif.gz -> FIF
        assert name in section, (suffix, section[:300])
        assert name in help_text, (suffix, help_text)
    assert "`.fif.gz`" in section


#: Settings fields whose default is None and whose value in force is a property.
_IN_FORCE = {"tracking_uri": "mlflow_uri", "store": "store_url"}


def _configuration_defaults() -> dict[str, str]:
    """README's Configuration table: ``{field: default}`` for the rows with a default in code."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Configuration")
    table = text[start:text.index("\n## ", start + 1)]
    rows = re.findall(r"^\| `BCISTREAM_(\w+)` \| `([^`]+)` \|", table, re.M)
    return {var.lower(): default for var, default in rows}


def test_configuration_defaults_are_what_the_code_uses(tmp_path, monkeypatch):
    """README said ``sqlite:///$HOME/mlflow.db``: the code puts it in BCISTREAM_HOME, not $HOME."""
    from bcistream.settings import Settings

    defaults = _configuration_defaults()
    assert {"home", "tracking_uri", "store", "profile"} <= set(defaults)
    for field in Settings.model_fields:
        monkeypatch.delenv(f"BCISTREAM_{field.upper()}", raising=False)
    assert Path(defaults.pop("home")) == Settings().home
    home = tmp_path / "home"
    monkeypatch.setenv("BCISTREAM_HOME", str(home))
    settings = Settings()
    for field, default in defaults.items():
        value = getattr(settings, _IN_FORCE.get(field, field))
        said = default.replace("$BCISTREAM_HOME", str(home))
        assert "$" not in said, f"BCISTREAM_{field.upper()}: {default} names another variable"
        same = said == str(value) or isinstance(value, float) and float(said) == value
        assert same, (field, default, value)
