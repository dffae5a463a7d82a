"""CLI defaults: classify's URL from the environment, serve's model from the registry's champions."""

from __future__ import annotations

import socket

import pytest

from bcistream.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_classify_url_defaults_to_the_environment(fixtures_dir, monkeypatch, capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("BCISTREAM_SERVICE_URL", url)
    gdf = fixtures_dir / "A99E-synthetic.gdf"
    assert main(["classify", str(gdf)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {url}/classify_file: service unreachable"), err


@pytest.mark.slow
def test_serve_default_is_the_one_champion_and_several_are_refused(tmp_path):
    from bcistream.cli.serve_cmds import default_champion
    from bcistream.training.registry import client, set_alias, tracking
    from tests.serving_support import make_registry

    reg = make_registry(tmp_path, n_versions=1)
    c = client(reg.tracking_uri)
    names = sorted(m.name for m in c.search_registered_models())
    champions = [n for n in names if "champion" in (c.get_registered_model(n).aliases or {})]
    assert len(champions) == 1
    base = champions[0].split("-")[0]
    assert default_champion(base, reg.tracking_uri) == f"models:/{champions[0]}@champion"
    assert default_champion("nothing-here", reg.tracking_uri) is None
    # A second NAME-LABEL champion: the user must choose, and is told the names.
    mv = c.get_model_version_by_alias(champions[0], "champion")
    other = f"{base}-B02"
    with tracking(reg.tracking_uri):
        v = c.copy_model_version(f"models:/{champions[0]}/{mv.version}", other)
    set_alias(reg.tracking_uri, other, "champion", v.version)
    from bcistream.errors import BcistreamError

    both = ", ".join(sorted([champions[0], other]))
    with pytest.raises(BcistreamError, match=f"several champions.*: {both}; choose one with --model"):
        default_champion(base, reg.tracking_uri)


def test_load_model_defaults_to_the_configured_registry(tmp_path, monkeypatch):
    """The library call finds the registry the commands use (BCISTREAM_HOME), no URI needed."""
    from bcistream.training.registry import ModelError, load_model

    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelError, match="nope"):
        load_model("models:/nope@champion")
    assert (tmp_path / "home" / "mlflow.db").exists()  # the settings' registry was the one asked
