"""Every backend pair the README documents runs a short campaign end to end with the
default operator kinds, and most of its cases are valid: a pair whose workers cannot
start, or whose reference rejects what the generator makes, fails here rather than
reporting a clean campaign that tested nothing."""

from __future__ import annotations

import pytest

from fuzzer.campaign import CampaignConfig, run_campaign

PAIRS = [
    pytest.param("torch.eager,torch.compile", id="inductor"),
    pytest.param("torch.eager,torch.compile:aot_eager", id="aot_eager"),
    pytest.param("torch.eager,torch.jit", id="jit"),
    pytest.param("torch.eager,torch.export", id="export"),
    pytest.param("tf.eager,tf.function", id="tf.function", marks=pytest.mark.tensorflow),
    pytest.param("tf.eager,tf.xla", id="xla", marks=pytest.mark.tensorflow),
    pytest.param("torch.eager,tf.eager", id="torch-vs-tf", marks=pytest.mark.tensorflow),
]


@pytest.mark.parametrize("backends", PAIRS)
def test_a_short_campaign_of_each_documented_pair_checks_mostly_valid_cases(backends, tmp_path):
    cfg = CampaignConfig(backends.split(","), tmp_path, time_s=600, seed=2, max_nodes=5, max_cases=16,
                         batch=8 if backends.endswith(("torch.compile", "tf.xla")) else 1, reduce_s=0)
    state = run_campaign(cfg)
    assert state.stopped == ""
    assert state.cases >= 16
    assert state.valid >= 0.75 * state.cases, state.skipped
    assert len(state.ops) >= 10  # several operators were exercised, not one degenerate model
    if "tf.xla" in backends or ("torch" in backends and "tf." in backends):
        # NaN handling is a documented setting there (XLA's fast min/max; each framework's rules)
        assert "special" not in state.values_modes
