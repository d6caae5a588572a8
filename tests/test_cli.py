"""The CLI end to end: outputs, and one clear error line with exit code 2 for bad input."""

import json
import os
import subprocess
import sys

import pytest

from fuzzer.cli import main


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fuzzer", *args], capture_output=True, text=True, timeout=timeout)


def test_gen_json_and_saved_programs(tmp_path):
    out = run_cli("gen", "--framework", "torch", "--count", "4", "--max-nodes", "5", "--seed", "1",
                  "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["generated"] == 4 and summary["valid"] >= 3 and summary["distinct_ops"] >= 3
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == summary["valid"]
    first = tmp_path / folders[0]
    assert (first / "case.json").exists()
    run = subprocess.run([sys.executable, "program.py"], cwd=first, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "checksum=" in run.stdout


def test_ops_lists_specs(capsys):
    assert main(["ops", "--framework", "torch", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["torch"]["spec"]["count"] >= 50
    assert "core.Add" in data["torch"]["spec"]["ids"]


@pytest.mark.parametrize("args,fragment", [
    (["gen", "--framework", "mxnet"], "invalid choice: 'mxnet'"),
    (["gen", "--count", "-1"], "expected a positive integer, got -1"),
    (["gen", "--count", "many"], "expected a positive integer, got 'many'"),
    (["frobnicate"], "invalid choice"),
    (["fuzz", "--backends", "torch.eager,torch.compile", "--out", "x", "--sample-batches", "1.5"],
     "expected a share from 0 to 1, got 1.5"),
])
def test_usage_errors_are_one_line_exit_2(args, fragment):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; the unwritable case is checked via a file path")
def test_unwritable_out_is_one_line_exit_2_readonly(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    out = run_cli("gen", "--count", "1", "--out", str(ro / "x"))
    assert out.returncode == 2 and "cannot write to output folder" in out.stderr


def test_out_that_is_a_file_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = run_cli("gen", "--count", "1", "--out", str(blocker / "sub"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write to output folder" in lines[0]


def test_help_does_not_import_frameworks():
    code = "import sys; from fuzzer.cli import build_parser; build_parser(); print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False False"
