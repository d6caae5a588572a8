"""A model whose eager run kills the campaign's process is skipped on resume, and
``dlfuzz fuzz`` restarts a campaign process a signal killed (fuzzer.generation_guard,
fuzzer.supervisor)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from fuzzer.generation_guard import CRASHED, MARKER, guarded, pending, recover
from fuzzer.supervisor import supervise

ROOT = Path(__file__).resolve().parent.parent


def test_the_model_being_made_is_noted_and_a_crashed_one_is_skipped(tmp_path):
    seen = []

    def make(index):
        seen.append((index, pending(tmp_path)))  # the note names the index while it is made
        return f"model {index}"

    crashed = [1]
    make_noted = guarded(make, tmp_path, crashed)
    assert make_noted(0) == "model 0" and seen == [(0, 0)]
    assert not (tmp_path / MARKER).exists()
    skipped = make_noted(1)
    assert not skipped.valid and CRASHED in skipped.search.error and len(seen) == 1
    (tmp_path / MARKER).write_text(json.dumps({"index": 7}))  # a predecessor died making 7
    assert recover(tmp_path, crashed) == 7 and crashed == [1, 7] and not (tmp_path / MARKER).exists()


def test_a_resumed_campaign_skips_and_counts_the_model_that_killed_its_predecessor(tmp_path):
    out = tmp_path / "c"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"index": 2}))
    cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", "torch.eager,torch.compile:aot_eager", "--seed", "1",
           "--max-cases", "5", "--ops", "spec", "--checks", "forward", "--reduce-time", "0", "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads((out / "campaign.json").read_text())
    assert state["crashed_generation"] == [2] and state["skipped"][CRASHED] == 1 and state["cases"] == 5


def test_a_campaign_process_killed_by_a_signal_is_restarted_and_says_so(tmp_path, capfd):
    flag = tmp_path / "died-once"
    program = [sys.executable, "-c",  # dies by SIGABRT the first time, exits 0 the second
               "import os, pathlib, signal, sys; f = pathlib.Path(sys.argv[1])\n"
               "if f.exists(): sys.exit(0)\n"
               "f.write_text('died'); os.kill(os.getpid(), signal.SIGABRT)"]
    (tmp_path / MARKER).write_text(json.dumps({"index": 4}))
    assert supervise([str(flag)], tmp_path, restarts=2, program=program) == 0
    err = capfd.readouterr().err
    assert "killed by SIGABRT while generating case 4; resuming" in err and "restart 1 of 2" in err
    always = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    assert supervise([], tmp_path, restarts=1, program=always) == 128 + 9
    assert "2 times; giving up" in capfd.readouterr().err
