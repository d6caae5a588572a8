"""``dlfuzz fuzz --cluster``: parsing and the missing-Ray error (fast, no Ray), and
campaigns on a local Ray instance with planted faults and a killed actor (slow)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace

import pytest

from fuzzer.args import cluster_spec, parse_cluster


@pytest.mark.parametrize("text,parsed", [
    ("local", ("local", None)),
    ("ray", ("ray", None)),
    ("ray:10.0.0.5:6379", ("ray", "10.0.0.5:6379")),
    ("ray:head.example.org:6379", ("ray", "head.example.org:6379")),
    ("ray:ray://head:10001", ("ray", "ray://head:10001")),
    ("ray:auto", ("ray", "auto")),
])
def test_cluster_values_parse(text, parsed):
    assert parse_cluster(text) == parsed
    assert cluster_spec(text) == text


@pytest.mark.parametrize("text", ["", "Ray", "dask", "ray:", "ray:head", "ray:head:port", "ray:head:0",
                                  "ray:head:70000", "ray::6379", "local:4"])
def test_bad_cluster_values_get_one_line_naming_the_choices(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected local, ray .* or ray:HOST:PORT") as e:
        cluster_spec(text)
    assert "\n" not in str(e.value) and repr(text) in str(e.value)


def test_a_bad_cluster_on_the_command_line_is_one_line_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "fuzzer", "fuzz", "--backends", "torch.eager,torch.compile:aot_eager",
                          "--cluster", "ray:nowhere", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert "--cluster" in line and "expected local, ray" in line and "'ray:nowhere'" in line


def test_without_ray_the_cluster_flag_says_what_to_install(tmp_path, monkeypatch, capsys):
    from fuzzer.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main(["fuzz", "--backends", "torch.eager,torch.compile:aot_eager", "--cluster", "ray",
                 "--time", "5s", "--out", str(tmp_path / "c")])
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "needs the Ray package" in line and "pip install -e '.[ray]'" in line
    assert not (tmp_path / "c" / "campaign.json").exists()


def test_without_ray_a_ray_sandbox_or_campaign_fails_with_that_line(tmp_path, monkeypatch):
    from fuzzer.campaign import CampaignConfig, CampaignError, _sandbox
    from fuzzer.cluster import RaySandbox, RayUnavailable

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayUnavailable, match=r"pip install -e '\.\[ray\]'"):
        RaySandbox(["torch.eager", "torch.compile:aot_eager"])
    cfg = CampaignConfig(["torch.eager", "torch.compile:aot_eager"], tmp_path, 10, cluster="ray:auto")
    with pytest.raises(CampaignError, match="needs the Ray package"):
        _sandbox(cfg, workers=1)


# ---- on a local Ray instance (slow; needs pip install -e '.[ray]') -----------------------------

PLANTED = "torch.compile:tests.planted_backends:"
FAULTS = {PLANTED + "raises_on_exp": "crash", PLANTED + "aborts_on_sin": "abort", PLANTED + "hangs_on_tanh": "timeout"}


@pytest.mark.slow
def test_a_ray_campaign_finds_a_crash_an_abort_and_a_hang_and_reports_each_once(tmp_path):
    ray = pytest.importorskip("ray")
    from fuzzer.campaign import CampaignConfig, run_campaign
    from tests.test_campaign import bug_folders

    backends = ["torch.eager", *FAULTS]
    # seed 7: of the first 16 models, two have exp, one sin and two tanh (generation of 2026-12)
    cfg = CampaignConfig(backends, tmp_path, time_s=600, seed=7, max_nodes=10, max_cases=16, timeout_s=15,
                         reduce_s=0, ops=("spec",), workers=2, cluster="ray")  # a local Ray with 2 CPUs
    state = run_campaign(cfg)
    planted = {fault for fault, op in zip(FAULTS.items(), ("core.Exp", "core.Sin", "core.Tanh")) if op in state.ops}
    assert len(planted) == 3, "seed 7 no longer draws exp, sin and tanh in its first 16 models: choose another"
    found = {(b["backends"][-1], b["kind"]) for b in bug_folders(tmp_path).values()}
    assert found == set(FAULTS.items())
    assert state.bugs == 3 and state.sightings >= 3  # each fault reported once
    assert state.bugs_by_kind == {"crash": 1, "abort": 1, "timeout": 1}
    assert state.cases == 16 and state.next_index == 16
    assert state.cluster == {"kind": "ray", "address": "local", "actors": 2, "nodes": 1, "actor_restarts": 0}
    assert not ray.is_initialized()  # the instance it started is stopped


@pytest.mark.slow
def test_killing_an_actor_mid_campaign_loses_no_case(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from fuzzer import cluster
    from fuzzer.campaign import CampaignConfig, run_campaign
    from tests.test_campaign import bug_folders

    made = []
    init = cluster.RaySandbox.__init__

    def remember(self, *args, **kw):
        init(self, *args, **kw)
        made.append(self)

    monkeypatch.setattr(cluster.RaySandbox, "__init__", remember)
    killed = []

    def progress(state):
        if state.cases >= 3 and not killed and made[0].kill_actor():  # the actor with a case in flight
            killed.append(state.cases)

    backends = ["torch.eager", PLANTED + "raises_on_exp"]
    cfg = CampaignConfig(backends, tmp_path, time_s=600, seed=7, max_nodes=10, max_cases=14, timeout_s=30,
                         reduce_s=0, ops=("spec",), workers=2, cluster="ray")
    state = run_campaign(cfg, progress)
    assert killed, "no actor had a case in flight to kill"
    assert made[0].restarts == 1 and state.cluster["actor_restarts"] == 1
    assert not ray.is_initialized()
    # every generated case was checked and counted, with the verdicts a local pool gives
    assert state.cases == 14 and state.next_index == 14
    assert not any(reason in ("other", "worker failed to start") for reason in state.skipped), state.skipped
    local = run_campaign(replace(cfg, out=tmp_path / "local", cluster="local"))
    assert (state.valid, state.sightings, state.skipped) == (local.valid, local.sightings, local.skipped)
    assert state.bugs >= 1 and set(bug_folders(tmp_path)) == set(bug_folders(tmp_path / "local"))
