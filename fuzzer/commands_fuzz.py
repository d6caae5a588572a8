"""Implementations of the ``fuzz`` and ``replay`` commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fuzzer.args import UsageError, writable_dir
from fuzzer.commands import op_kinds as op_specs_kinds, ready_framework


def _backends(text: str) -> list[str]:
    from oracles.backends import BackendError, validate_backends

    # A user's backend module (torch.compile:pkg.module:function) is found from the current
    # folder, as `python -m` would; the sandbox's workers inherit the path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    names = [b.strip() for b in text.split(",") if b.strip()]
    if len(names) < 2:
        raise UsageError(f"--backends needs a reference and at least one backend to compare, got {text!r} "
                         f"(e.g. --backends torch.eager,torch.compile)")
    try:
        validate_backends(names)
    except BackendError as e:
        raise UsageError(str(e)) from None
    return names


def _coverage_sources(args: argparse.Namespace, backends: list[str]) -> tuple[str, ...]:
    """The folders ``--coverage`` measures (none without it); one line if a folder is missing."""
    from oracles.sut_coverage import default_sources, missing_sources

    if args.coverage_source is not None:
        dirs = [os.path.abspath(d.strip()) for d in args.coverage_source.split(",") if d.strip()]
        missing = missing_sources(dirs)
        if missing or not dirs:
            raise UsageError(f"--coverage-source: {f'no folder {missing[0]}' if missing else 'no folder given'}; "
                             f"pass existing folders (a comma list), e.g. the torch/_inductor folder of your torch")
        return tuple(dirs)
    if not args.coverage:
        return ()
    dirs = default_sources(backends)
    if not dirs:
        raise UsageError(f"--coverage: no compiler package to measure for {','.join(backends)}; "
                         f"choose the folders with --coverage-source")
    return tuple(dirs)


def _check_cluster(cluster: str, coverage: bool) -> None:
    """``--cluster ray[:ADDRESS]`` needs Ray installed; ``--coverage`` needs the workers'
    files on this machine (a local pool or a local Ray instance). One line if not."""
    from fuzzer.args import parse_cluster

    kind, address = parse_cluster(cluster)
    if kind == "local":
        return
    from fuzzer.cluster import RayUnavailable, import_ray

    try:
        import_ray()
    except RayUnavailable as e:
        raise UsageError(str(e)) from None
    if coverage and address is not None:
        raise UsageError(f"--coverage cannot measure workers on the cluster at {address}: their coverage files stay "
                         f"on their nodes; use --coverage with --cluster local or --cluster ray")


def cmd_fuzz(args: argparse.Namespace) -> int:
    from fuzzer.campaign import CampaignConfig, CampaignError, default_batch, parse_duration, run_campaign
    from fuzzer.quiet import native_output_to
    from fuzzer.screen import Display, campaign_display

    try:
        seconds = parse_duration(args.time)
    except ValueError as e:
        raise UsageError(f"--time: {e}") from None
    _check_cluster(args.cluster, args.coverage or args.coverage_source is not None)
    backends = _backends(args.backends)
    coverage = _coverage_sources(args, backends)
    ignore = None
    if args.ignore:
        from reports.known import KnownIssues, KnownIssuesError

        try:
            ignore = KnownIssues.load(args.ignore)
        except KnownIssuesError as e:
            raise UsageError(str(e)) from None
    out = Path(writable_dir(args.out))
    cfg = CampaignConfig(backends, out, seconds, seed=args.seed, workers=args.workers, max_nodes=args.max_nodes,
                         timeout_s=args.timeout, max_cases=args.max_cases,
                         batch=args.batch or default_batch(backends), reduce_s=args.reduce_time, ignore=ignore,
                         ops=tuple(op_specs_kinds(args.ops)), checks=tuple(args.checks),
                         coverage=coverage, guide=args.guide, cluster=args.cluster,
                         sample_batches=args.sample_batches)
    from fuzzer.supervisor import is_child, supervise

    if not is_child():  # the campaign runs in a child process, restarted if it is killed
        return supervise(args.argv, out)
    display = Display(None)
    try:
        # what the frameworks print (banners, warnings, MKL's complaints) goes to the log;
        # the display (fuzzer.screen: live panel, --quiet lines, or a line per case) to the terminal
        with native_output_to(out / "logs" / "campaign.log") as terminal, \
                campaign_display(terminal, backends, seconds, args.workers, quiet=args.quiet, json=args.json) as display:
            for fw in {"tensorflow" if b.startswith("tf.") else "torch" for b in backends}:
                ready_framework(fw)
            state = run_campaign(cfg, display.progress)
    except CampaignError as e:
        if display.open_line:
            print(file=sys.stderr)  # end the progress line
        raise UsageError(str(e)) from None
    figures = {k: v for k, v in state.to_json().items() if k not in ("ops", "timeline", "next_index", "version")}
    if args.json:
        print(json.dumps(figures))
    else:
        if display.open_line:
            print(file=sys.stderr)
        print(f"{state.cases} cases ({state.valid} valid, {state.valid_share:.0%}) in {state.seconds:.0f} s, {figures['cases_per_minute']} cases/min; "
              f"{state.bugs} distinct bugs {state.bugs_by_kind or ''}"
              f"{f'; skipped {state.skipped}' if state.skipped else ''}"
              f"{f', {state.ignored} known ignored' if state.ignored else ''}; results in {out}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from corpus.case import CaseFormatError
    from fuzzer import api

    path = Path(args.path)
    bug = None
    if path.is_dir() and not (path / "bug.json").exists():
        raise UsageError(f"{path} has no bug.json; pass a bug folder from a campaign's bugs/ or a case.json")
    try:
        bug, case = api.load_bug(path) if path.is_dir() else (None, api.load(path))
    except CaseFormatError as e:
        raise UsageError(str(e)) from None
    if args.backends:
        backends = _backends(args.backends)
    elif bug is not None:
        backends = _backends(",".join(bug["backends"]))
    else:
        raise UsageError("a bare case.json needs --backends (e.g. --backends torch.eager,torch.compile)")
    for fw in {"tensorflow" if b.startswith("tf.") else "torch" for b in backends}:
        ready_framework(fw)
    result = api.check(case, backends, timeout_s=args.timeout)  # in a sandbox worker
    if not result.valid:
        print(f"invalid case: {result.invalid_reason}")
        return 2
    failing = result.bugs
    if bug is not None:
        still = [v for v in failing if v.backend == bug["verdict"]["backend"] and v.status == bug["kind"]]
        print(("STILL FAILS: " + "; ".join(v.summary() for v in still)) if still else "fixed: " + result.summary())
        return 1 if still else 0
    print(result.summary())
    return 1 if failing else 0
