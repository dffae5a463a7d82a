"""The command lines in the manifests are accepted by the real CLIs they run (`bcistream ...` parsed by
the typer app, `mlflow server ...` by MLflow's click CLI) with the environment the pod gets from its
ConfigMap, so a renamed option breaks a test, not a pod. Parsing only: nothing is executed.
"""

from __future__ import annotations

import pytest
import typer

from tests.k8s_support import JOBS, PLATFORM, find, render, workloads


def manifest_commands() -> list[tuple[str, list[str], list[str], dict]]:
    seen = {}
    for overlay in ("local", "gke"):
        platform = render(PLATFORM[overlay])
        for obj, tmpl in workloads(platform + render(JOBS[overlay])):
            for c in tmpl["spec"]["containers"]:
                env = {}
                for src in c.get("envFrom", []):
                    env.update(find(platform, "ConfigMap", src["configMapRef"]["name"])[0]["data"])
                env.update({e["name"]: e.get("value", "from-secret") for e in c.get("env", [])})
                command = c.get("command", ["bcistream"])
                seen[f"{obj['metadata']['name']}-{overlay}"] = (command, c["args"], env)
    return [(where, *value) for where, value in sorted(seen.items())]


def _parse(group, args: list[str]) -> dict:
    name, *rest = args
    command = group.get_command(None, name)
    assert command is not None, f"the CLI has no command '{name}'"
    return command.make_context(name, list(rest)).params


@pytest.mark.parametrize(("where", "command", "args", "env"), [
    # Importing MLflow's CLI takes ~5 s.
    pytest.param(*case, id=case[0], marks=[pytest.mark.slow] if case[1] == ["mlflow"] else [])
    for case in manifest_commands()])
def test_manifest_command_lines_parse(where: str, command: list[str], args: list[str], env: dict,
                                      monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if command == ["bcistream"]:
        from bcistream.cli import app

        assert _parse(typer.main.get_command(app), args)
    elif command == ["mlflow"]:
        from mlflow.cli import cli

        params = _parse(cli, args)
        assert params["backend_store_uri"] and params["artifacts_destination"]
    else:
        pytest.fail(f"{where}: unexpected command {command}")


def test_a_wrong_option_is_caught():
    from bcistream.cli import app

    with pytest.raises(Exception, match="No such option"):
        _parse(typer.main.get_command(app), ["serve", "--prot", "3000"])
