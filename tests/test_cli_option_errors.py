"""Every bad option value is one ``error: --option: …`` line with exit 2, in every command.

click/typer's own checks (types, ``min=``/``max=`` ranges, missing and unknown options) go through
`bcistream.cli.usage.usage_line`; `LiveConfig`'s go through `live_config`. None prints a usage block.
"""

from __future__ import annotations

import re

import pytest

import bcistream as bs
from bcistream.cli import main
from bcistream.errors import ConfigError, ParameterError

RUN = ["run", "--from", "lsl:amp", "--model", "/nowhere/model"]


@pytest.mark.parametrize(("argv", "line"), [
    # run: typer's range and type checks, and LiveConfig's own
    ([*RUN, "--workers", "0"], "error: --workers: must be >= 1, got 0"),
    # a decision outlet named like the input would be decoded as EEG by the next --from lsl:amp
    ([*RUN, "--to", "lsl-proba:amp"], "error: --to: outlet 'lsl-proba:amp' has the name of an input stream"),
    ([*RUN, "--workers", "two"], "error: --workers: must be an integer, got two"),
    ([*RUN, "--hop", "0"], "error: --hop: must be > 0, got 0"),
    ([*RUN, "--hop", "abc"], "error: --hop: must be a number, got abc"),
    ([*RUN, "--record-preroll", "-1"], "error: --record-preroll: must be >= 0, got -1"),
    ([*RUN, "--metrics-port", "70000"], "error: --metrics-port: must be <= 65535, got 70000"),
    ([*RUN, "--max-decisions", "0"], "error: --max-decisions: must be >= 1, got 0"),
    ([*RUN, "--duration", "-5"], "error: --duration: must be > 0, got -5"),
    ([*RUN, "--poll-interval", "0"], "error: --poll-interval: must be > 0, got 0"),
    ([*RUN, "--trigger", "never"], "error: --trigger: must be hop, cue or both"),
    # train / tune / replay / serve / synth
    (["train", "--folds", "x"], "error: --folds: must be an integer, got x"),
    (["train", "--margin", "-1"], "error: --margin: must be >= 0, got -1"),
    (["tune", "--trials", "zero"], "error: --trials: must be an integer, got zero"),
    (["replay", "x.gdf", "--chunk", "0"], "error: --chunk: must be >= 1, got 0"),
    (["replay", "x.gdf", "--speed", "-1"], "error: --speed: must be > 0 or 'max'"),
    (["serve", "--port", "0"], "error: --port: must be >= 1, got 0"),
    (["classify", "x.gdf", "--labels", "/nonexistent/A01E.mat"],  # was "[Errno 2] No such file…"
     "error: --labels: file '/nonexistent/A01E.mat' does not exist"),
    (["synth", "--out", "x", "--subjects", "100"], "error: --subjects: must be <= 99, got 100"),
    # usage errors: missing, unknown, extra
    (["run", "--model", "m"], "error: missing option --from"),
    (["replay"], "error: missing argument FILE"),
    ([*RUN, "--worker", "2"], "error: no such option: --worker (did you mean --workers?)"),
    (["nocommand"], "error: no such command 'nocommand'"),
])
def test_bad_option_values_are_one_error_line(argv, line, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(line), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Usage:" not in err and "Traceback" not in err and "Input should" not in err


def test_several_live_config_problems_share_the_one_line(capsys):
    assert main([*RUN, "--hop", "0", "--idle-exit", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --hop: must be > 0, got 0.0; --idle-exit: must be > 0, got 0.0", err


def test_live_config_errors_are_one_line_per_field_naming_it():
    with pytest.raises(ConfigError) as info:
        bs.LiveConfig(hop_s=0, workers=0, trigger="sometimes", bogus=1)
    lines = str(info.value).splitlines()
    assert lines == ["LiveConfig: trigger must be 'hop', 'cue' or 'both', got 'sometimes'",
                     "LiveConfig: hop_s must be > 0, got 0.0",
                     "LiveConfig: workers must be >= 1, got 0",
                     "LiveConfig: bogus is not a known field"]
    assert isinstance(info.value, ValueError) and isinstance(info.value, ParameterError)
    assert [f for f, _ in info.value.problems] == ["trigger", "hop_s", "workers", "bogus"]
    for fields, text in (({"metrics_port": "abc"}, "metrics_port must be an integer, got 'abc'"),
                         ({"sinks": "stdout"}, "sinks must be a list, got 'stdout'"),
                         ({"max_decisions": 1.5}, "max_decisions must be a whole number, got 1.5"),
                         ({"record_preroll": -1}, "record_preroll must be >= 0, got -1")):
        with pytest.raises(ConfigError, match=re.escape(f"LiveConfig: {text}")) as info:
            bs.LiveConfig(**fields)
        assert "pydantic" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="LiveConfig: hop_s must be > 0"):
        bs.LiveConfig.model_validate({"hop_s": -1})


def test_a_jsonl_sink_on_a_folder_names_the_spec(tmp_path):
    """``--to jsonl:adir`` said only "[Errno 21] Is a directory: 'adir'"."""
    from bcistream.errors import BcistreamError
    from bcistream.streamer.sinks import JsonlSink

    with pytest.raises(BcistreamError, match=r"jsonl:.*: is a folder; give a file path"):
        JsonlSink(tmp_path)
