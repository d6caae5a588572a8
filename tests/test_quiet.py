"""What the frameworks print never reaches the user's terminal: it goes to the campaign's
log, and the terminal shows dlfuzz's own lines only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer.quiet import native_output_to

ROOT = Path(__file__).resolve().parent.parent


def test_native_writes_prints_and_warnings_go_to_the_log(tmp_path):
    """In a process of its own: pytest's capture would otherwise stand in for print()."""
    log = tmp_path / "logs" / "campaign.log"
    code = f"""
import os, warnings
from pathlib import Path
from fuzzer.quiet import native_output_to
with native_output_to(Path({str(log)!r})) as terminal:
    os.write(1, b"oneMKL ERROR: Parameter 4 was incorrect\\n")
    os.write(2, b"I0000 oneDNN custom operations are on\\n")
    print("a model printed this")
    warnings.warn("torch.foo is deprecated", DeprecationWarning, stacklevel=1)
    terminal.write("cases 3\\n")
print("after")
"""
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "after\n" and done.stderr == "cases 3\n"
    text = log.read_text()
    for line in ("oneMKL ERROR", "oneDNN", "a model printed this", "torch.foo is deprecated"):
        assert line in text


@pytest.mark.tensorflow
def test_a_torch_vs_tensorflow_campaign_prints_only_its_own_lines(tmp_path):
    """Importing TensorFlow prints banners, and the models' eager runs in the parent print
    oneMKL errors and deprecation warnings: none of it on stdout or stderr."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # let TensorFlow print its banners
    cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", "torch.eager,tf.eager", "--time", "5m",
           "--max-cases", "40", "--seed", "11", "--reduce-time", "0", "--out", str(tmp_path)]
    done = subprocess.run(cmd + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    [line] = done.stdout.splitlines()
    assert json.loads(line)["cases"] >= 40
    assert (tmp_path / "logs" / "campaign.log").stat().st_size > 0  # what was printed is kept
