"""One flag style on every command (issue 16 item 7): outputs are -o/--output,
the old spellings still work for a release as hidden aliases with a note on
stderr, options are never abbreviated, a mistyped option gets a "did you
mean", and --help works on every command."""

import argparse

import numpy as np
import pytest
from test_bad_input import cli

from neuromesh.cli import build_parser

#: The commands that write an output, and what it is.
WRITERS = {"example": "IMAGE", "run": "NPZ", "demo": "DIR", "compile": "IMAGE", "rtl": "FILE",
           "build": "DIR", "eval": "NPZ", "sweep": "PNG", "cosim-campaign": "DIR"}

#: Old spelling -> command (kept as hidden, deprecated aliases of -o/--output).
ALIASES = {"--save": "example", "--out": "run", "--out-dir": "demo",
           "--reproducers": "cosim-campaign"}

#: Arguments a command needs besides the output.
REQUIRED = {"run": ["image.nmi"]}


def commands() -> dict:
    """Every subcommand's parser by name."""
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def note(command: str, old: str) -> str:
    return (f"neuromesh {command}: note: {old} is deprecated and will be removed in a future "
            f"release; use -o/--output")


def test_every_command_has_help_and_a_strict_parser(capsys):
    """--help formats on every command (a bare % in a help string would
    crash argparse's formatter), and every command's parser refuses
    abbreviations."""
    from neuromesh.cli import _Parser
    found = commands()
    assert set(WRITERS) | {"info", "report", "cosim"} <= set(found)
    for name, parser in found.items():
        assert isinstance(parser, _Parser) and parser.allow_abbrev is False, name
        assert parser.description, name
        code, out, err = cli([name, "--help"], capsys)
        assert code == 0, (name, err)
        assert out.startswith(f"usage: neuromesh {name}"), name
    code, out, _ = cli(["--help"], capsys)
    assert code == 0 and all(name in out for name in found)


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_outputs_are_dash_o_everywhere(command, capsys):
    code, out, _ = cli([command, "--help"], capsys)
    assert code == 0
    assert f"-o {WRITERS[command]}, --output {WRITERS[command]}" in out
    for old in ALIASES:
        assert old + " " not in out and old + "\n" not in out, (command, old)


@pytest.mark.parametrize("old", sorted(ALIASES))
def test_old_spellings_parse_as_output_with_a_note(old, capsys):
    command = ALIASES[old]
    args = build_parser().parse_args([command, *REQUIRED.get(command, []), old, "somewhere"])
    assert args.output == "somewhere"
    assert capsys.readouterr().err.strip() == note(command, old)
    args = build_parser().parse_args([command, *REQUIRED.get(command, []), "-o", "there"])
    assert args.output == "there"
    assert capsys.readouterr().err == ""


def test_example_save_still_writes_the_image(tmp_path, capsys):
    img = tmp_path / "ex.nmi"
    code, out, err = cli(["example", "--steps", "2", "--batch", "1", "--quiet", "--save", img],
                         capsys)
    assert code == 0, err
    assert err.strip() == note("example", "--save")
    assert img.exists() and (tmp_path / "ex.inputs.npz").exists()
    assert f"wrote {img} and {tmp_path / 'ex.inputs.npz'}" in out


def test_run_out_still_writes_the_outputs(tmp_path, capsys):
    from neuromesh.examples import feedforward_2x2
    from neuromesh.image import save
    img = tmp_path / "ex.nmi"
    save(feedforward_2x2(), img)
    code, out, err = cli(["run", img, "--steps", "3", "--quiet", "--out", tmp_path / "r.npz"],
                         capsys)
    assert code == 0, err
    assert err.strip() == note("run", "--out")
    with np.load(tmp_path / "r.npz") as f:
        assert f["outputs"].shape == (3, 1, feedforward_2x2().n_outputs)


def test_abbreviations_are_refused_with_a_suggestion(tmp_path, capsys):
    """`--outp` is not taken for `--output` (nor `--prob` for `--probe`):
    the error names the command and the closest option, and nothing runs."""
    code, out, err = cli(["run", "x.nmi", "--steps", "2", "--outp", tmp_path / "o.npz"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == (f"neuromesh run: error: unrecognized arguments: --outp "
                           f"{tmp_path / 'o.npz'} (did you mean --output?) "
                           f"(see neuromesh run --help)")
    code, _, err = cli(["compile", "m.nir", "-o", "m.nmi", "--framwork=snntorch"], capsys)
    assert code == 2
    assert err.strip() == ("neuromesh compile: error: unrecognized arguments: "
                           "--framwork=snntorch (did you mean --framework?) "
                           "(see neuromesh compile --help)")
    code, _, err = cli(["eval", "x.nmi", "--input", "x.npz", "--label", "y.npy"], capsys)
    assert code == 2 and "(did you mean --labels?)" in err
    assert not list(tmp_path.iterdir())


def test_a_misspelt_required_option_is_named_not_just_missing(capsys):
    code, _, err = cli(["compile", "m.nir", "--ouput", "m.nmi", "--framework", "snntorch"],
                       capsys)
    assert code == 2
    assert err.strip() == ("neuromesh compile: error: unrecognized arguments: --ouput "
                           "(did you mean --output?) (see neuromesh compile --help)")


def test_unknown_arguments_without_a_close_option(capsys):
    code, _, err = cli(["rtl", "-o", "x.v", "--zzzzzz"], capsys)
    assert code == 2
    assert err.strip() == ("neuromesh rtl: error: unrecognized arguments: --zzzzzz "
                           "(see neuromesh rtl --help)")
