"""A campaign that cannot test says so: specs cross the process boundary, workers that
die at start-up and a reference that rejects most cases stop it with one line, exit 2."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer.generate import common_dtype_specs
from rules.registry import operator_specs

ROOT = Path(__file__).resolve().parent.parent


def test_every_kind_of_spec_survives_the_trip_to_a_sandbox_worker():
    """Workers get their specs pickled; a spec that does not unpickle kills every worker
    (the cross-framework wrapper recursed in __getattr__ while unpickling)."""
    specs = operator_specs("torch", ("spec", "inferred", "concrete"))
    kinds = {type(s).__name__ for s in specs}
    assert len(kinds) >= 3, kinds
    wrapped = common_dtype_specs(specs, ("torch", "tensorflow"))
    assert wrapped
    for spec in [*{type(s).__name__: s for s in specs}.values(), *wrapped[:20]]:
        back = pickle.loads(pickle.dumps(spec))
        assert back.id == spec.id
        assert back.dtype_options("torch") == spec.dtype_options("torch")
    w = wrapped[0]
    back = pickle.loads(pickle.dumps(w))
    assert back.dtype_options("tensorflow") == w.dtype_options("tensorflow")


def fuzz(out: Path, backends: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", backends, "--time", "5m", "--seed", "1",
           "--max-nodes", "4", "--ops", "spec", "--reduce-time", "0", "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=600)


def test_workers_that_die_at_start_up_stop_the_campaign_with_one_line_and_exit_2(tmp_path):
    done = fuzz(tmp_path, "torch.eager,torch.compile:tests.planted_worker_start:backend", "--max-cases", "20")
    assert done.returncode == 2, done.stderr
    *progress, line = done.stderr.strip().splitlines()  # the progress line, then one error line
    assert all(p.lstrip("\r").startswith("cases ") for p in progress)
    assert line.startswith("dlfuzz fuzz: error: campaign stopped: sandbox workers")
    assert "died at start-up" in line
    assert "planted: this backend's module cannot be loaded in a sandbox worker" in line  # the worker's last line
    log = tmp_path / "logs" / "worker-0.log"
    assert str(log) in line and "Traceback" in log.read_text()
    state = json.loads((tmp_path / "campaign.json").read_text())
    assert "died at start-up" in state["stopped"] and state["valid"] == 0


def test_a_reference_that_rejects_most_cases_stops_the_campaign(tmp_path):
    done = fuzz(tmp_path, "torch.compile:tests.planted_backends:raises_always,torch.eager", "--max-cases", "10",
                "--json")
    assert done.returncode == 2, done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert "campaign stopped: only 0 of the first 10 cases were valid" in line
    assert "reference raised (10x)" in line and "planted: this backend rejects every model" in line
    state = json.loads((tmp_path / "campaign.json").read_text())
    assert state["skipped"] == {"reference raised": 10} and state["stopped"].startswith("only 0 of the first 10")


@pytest.mark.parametrize("share", [0.3, 0.9])
def test_the_valid_share_is_on_the_progress_line(share, capsys):
    from fuzzer.campaign import CampaignState, print_progress

    state = CampaignState(["torch.eager", "torch.compile"], 0, 10, cases=100, valid=int(share * 100), seconds=60)
    print_progress(state)
    assert f"valid {int(share * 100)} ({share:.0%})" in capsys.readouterr().err
