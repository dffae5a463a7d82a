"""``--help`` of every command is plain text: no RST quoting, no ``<list[str]>`` metavars."""

from __future__ import annotations

import typer

from bcistream.cli import app, main


def _commands(group=None, prefix=()):
    """Every command path, groups included (``("k8s", "submit")``)."""
    group = typer.main.get_command(app) if group is None else group
    out = [prefix]
    for name, sub in getattr(group, "commands", {}).items():
        out.extend(_commands(sub, (*prefix, name)))
    return out


def test_every_help_is_plain_text(capsys):
    paths = _commands()
    assert ("run",) in paths and ("k8s", "submit") in paths and len(paths) > 15
    for path in paths:
        code = main([*path, "--help"])
        out = capsys.readouterr().out
        assert code == 0 and "Usage:" in out, path
        assert "``" not in out, (path, [line for line in out.splitlines() if "``" in line])
        assert "<list[" not in out, (path, [line for line in out.splitlines() if "<list[" in line])
        assert "`" not in out, (path, [line for line in out.splitlines() if "`" in line])


def test_list_options_have_named_metavars(capsys):
    main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--train FILE" in out and "--set KEY=VALUE" in out
    main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--to SINK" in out and "--kafka-opt KEY=VALUE" in out
    main(["tune", "--help"])
    out = capsys.readouterr().out
    assert "--set fixes parameters" in out  # was ``--set`` fixes parameters


def test_run_help_names_every_sink_kind(capsys):
    from bcistream.streamer.endpoints import SINK_KINDS

    main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    missing = [kind for kind in SINK_KINDS if kind not in ("stdout",) and f"{kind}:" not in out]
    assert not missing, missing


def test_usage_lines_name_arguments_as_click_does(capsys):
    """typer 0.29 wrote a required argument as ``{file}``, an unfilled placeholder to the reader."""
    for path in _commands():
        main([*path, "--help"])
        usage = capsys.readouterr().out.split("\n\n")[0]
        assert "{" not in usage and "}" not in usage, (path, usage)
    main(["replay", "--help"])
    out = capsys.readouterr().out
    assert "replay [OPTIONS] FILE\n" in out and "\n  FILE <path>  Recording" in out, out
    main(["k8s", "render-job", "--help"])
    assert "render-job [OPTIONS] KIND [ARGS]...\n" in capsys.readouterr().out
    main(["info", "--help"])
    assert "info [OPTIONS] [FILE]...\n" in capsys.readouterr().out
    assert main(["replay"]) == 2
    assert capsys.readouterr().err.startswith("error: missing argument FILE")  # the name the usage shows
