"""The ``merge`` command: campaign folders of separate machines or nights as one.

    dlfuzz merge OUT DIR [DIR ...] [--json]

Each DIR is read with the campaign's own loader (``fuzzer.campaign.CampaignState``); the
merge itself is ``reports.merge``. Only the standard library is imported at module level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fuzzer.args import UsageError


def add_parsers(sub) -> None:
    p = sub.add_parser("merge", help="merge campaign folders (separate machines or nights) into one campaign folder")
    p.add_argument("out", metavar="OUT", help="the merged campaign folder to create (must not exist, or be empty)")
    p.add_argument("dirs", metavar="DIR", nargs="+",
                   help="campaign folders (the --out of 'dlfuzz fuzz') of the same backends")
    p.add_argument("--json", action="store_true", help="print the merged figures as one JSON line")


def _source(path: str):
    """One DIR as a ``reports.merge.Source``; UsageError unless it is a campaign folder."""
    from fuzzer.campaign import CampaignError, CampaignState
    from reports.merge import Source

    root = Path(path)
    state_path = root / "campaign.json"
    if not root.is_dir():
        raise UsageError(f"{root} is not a dlfuzz campaign folder (not a folder); pass the --out of 'dlfuzz fuzz'")
    if not state_path.is_file():
        raise UsageError(f"{root} is not a dlfuzz campaign folder (no campaign.json); pass the --out of 'dlfuzz fuzz'")
    try:
        state = CampaignState.load(state_path)
        raw = json.loads(state_path.read_text())
    except (CampaignError, OSError, ValueError):
        raise UsageError(f"{root} is not a dlfuzz campaign folder ({state_path} is not a readable campaign "
                         f"state)") from None
    # every key the file has (counters this version does not know are merged too), the
    # loader's reading of those it knows (defaults filled, derived figures recomputed)
    return Source(root, {**raw, **state.to_json()})


def cmd_merge(args: argparse.Namespace) -> int:
    from reports.merge import MergeError, merge_campaigns

    sources = [_source(d) for d in args.dirs]
    try:
        result = merge_campaigns(Path(args.out), sources)
    except MergeError as e:
        raise UsageError(str(e)) from None
    s = result.state
    if args.json:
        print(json.dumps({"out": str(result.out), "campaigns": len(s["merged_from"]), "cases": s.get("cases", 0),
                          "valid": s.get("valid", 0), "bugs": result.bugs, "shared_bugs": result.shared,
                          "twins_merged": result.twins, "sightings": s.get("sightings", 0),
                          "unreadable": result.unreadable}))
        return 0
    for name in result.unreadable:
        print(f"skipped {name}: no readable bug.json (a folder interrupted while written)")
    twins = f", {result.twins} merged as twins" if result.twins else ""
    print(f"merged {len(args.dirs)} campaign folders into {result.out}: {s.get('cases', 0)} cases "
          f"({s.get('valid', 0)} valid), {result.bugs} bugs ({result.shared} seen in more than one{twins}), "
          f"{s.get('sightings', 0)} sightings; 'dlfuzz report {result.out}' renders it")
    return 0
