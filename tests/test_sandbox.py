"""The sandbox: aborts and hangs become verdicts, and checking goes on in a new worker."""

import time

import pytest

from oracles.backends import BackendError
from oracles.sandbox import Sandbox
from tests.test_oracles import PLANTED, chain, generated

ABORTS = PLANTED + "aborts_on_sin"
HANGS = PLANTED + "hangs_on_tanh"


def test_unknown_backends_fail_before_any_worker_starts():
    start = time.monotonic()
    with pytest.raises(BackendError, match="unknown backend 'torch.nope'"):
        Sandbox(["torch.eager", "torch.nope"])
    with pytest.raises(BackendError, match="could not import module"):
        Sandbox(["torch.eager", "torch.compile:no_such_module:fn"])
    assert time.monotonic() - start < 60


def test_an_abort_becomes_a_verdict_and_a_new_worker_checks_the_next_case():
    with Sandbox(["torch.eager", ABORTS], timeout_s=60) as sandbox:
        result = sandbox.check(chain(["core.Add", "core.Sin"]))
        assert result.valid
        [bug] = result.bugs
        assert (bug.backend, bug.status, bug.stage) == (ABORTS, "abort", "compile")
        assert bug.message == "killed by signal SIGABRT"
        assert sandbox.restarts == 1
        after = sandbox.check(chain(["core.Add", "core.Exp"]))
        assert after.valid and [v.status for v in after.verdicts] == ["ok", "ok"]


def test_a_sandbox_removes_its_own_temporary_log_folder_and_keeps_a_given_one(tmp_path):
    sandbox = Sandbox(["torch.eager", "torch.compile:eager"], timeout_s=60)
    assert sandbox.check(chain(["core.Add"])).valid
    temporary = sandbox.log_dir
    assert (temporary / "worker-0.log").exists()
    sandbox.close()
    assert not temporary.exists()
    assert sandbox.check(chain(["core.Sin"])).valid  # used again after close: a fresh folder
    sandbox.close()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker-0.log").write_text("an earlier run's log")
    with Sandbox(["torch.eager", "torch.compile:eager"], timeout_s=60, log_dir=tmp_path / "logs"):
        pass
    assert (tmp_path / "logs" / "worker-0.log").read_text() == "an earlier run's log"


@pytest.mark.slow
def test_a_hang_becomes_a_timeout_and_the_backends_after_it_are_still_judged():
    backends = ["torch.eager", ABORTS, HANGS, "torch.compile:aot_eager", PLANTED + "raises_on_exp"]
    with Sandbox(backends, timeout_s=15) as sandbox:
        result = sandbox.check(chain(["core.Sin", "core.Tanh", "core.Exp"]))
        assert result.valid
        assert [(v.backend, v.status, v.stage) for v in result.verdicts] == [
            ("torch.eager", "ok", ""), (ABORTS, "abort", "compile"), (HANGS, "timeout", "compile"),
            ("torch.compile:aot_eager", "ok", ""), (PLANTED + "raises_on_exp", "crash", "compile")]
        assert result.verdict(HANGS).message == "no result after 15s"
        assert sandbox.restarts == 2
        fine = sandbox.check(chain(["core.Mul"]))
        assert fine.valid and fine.bugs == []


@pytest.mark.slow
def test_check_many_with_two_workers_checks_every_case():
    cases = generated("torch", 12, 8, max_nodes=6)
    pulled = []

    def lazily():
        for case in cases:
            pulled.append(case)
            yield case

    with Sandbox(["torch.eager", "torch.compile:aot_eager"], timeout_s=60, workers=2) as sandbox:
        results = list(sandbox.check_many(lazily()))
    assert len(results) == len(cases) == len(pulled)
    assert {id(c) for c, _ in results} == {id(c) for c in cases}
    for _, result in results:
        assert result.valid and result.bugs == [], result.summary()
