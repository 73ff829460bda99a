"""``examples/train_digits.py`` never overwrites the shipped model by default."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "train_digits.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)          # torch is imported only when training
    return module


def test_outputs_go_to_a_new_folder_unless_replace_shipped():
    script = load_script()
    args = script.parse_args([])
    assert args.output == Path("digits-model/digits_cuba.nir")
    assert args.fixture == Path("digits-model/digits_snntorch_reference.npz")
    args = script.parse_args(["--out-dir", "elsewhere", "--no-fixture"])
    assert args.output == Path("elsewhere/digits_cuba.nir") and args.fixture is None
    args = script.parse_args(["--replace-shipped"])
    assert args.output == ROOT / "neuromesh/data/digits_cuba.nir"
    assert args.fixture == ROOT / "tests/data/digits_snntorch_reference.npz"


def test_a_training_run_leaves_tracked_files_alone(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("snntorch")
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                            text=True).stdout
    subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1", "--hidden", "8",
                    "--threads", "1"], cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "digits-model" / "digits_cuba.nir").exists()
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True).stdout
    assert after == before
