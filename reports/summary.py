"""The campaign summary (``dlfuzz report DIR``): ``DIR/summary.md`` and ``DIR/summary.html``.

Both hold the campaign's figures, a table of its distinct bugs (kind, backends,
operators, first seen, operator nodes when found and after reduction, how often seen),
the eager validation gaps apart (``eager-validation``: a compiler's fake-tensor/meta
checks reject a call eager runs; a gap in eager's checks, not a compiler crash, and on an
internal API such as ``torch.native_*`` or ``torch._*`` one a user rarely meets),
the bugs that likely share one root cause (see :func:`root_cause_groups`),
cases and distinct bugs over time (campaign.json's ``timeline``) and how often each
operator was used (``ops``). The HTML page opens from disk: plain HTML and CSS with the
plots as inline SVG, no scripts and no external resources.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from corpus.case import write_atomic
from reports.signature import normalize_message


class SummaryError(ValueError):
    """A campaign folder that cannot be summarized; the message is one line."""


@dataclass
class Campaign:
    root: Path
    state: dict[str, Any]
    bugs: list[dict[str, Any]]
    unreadable: list[str]


_REQUIRED = ("backends", "cases", "valid", "bugs", "seconds")


def load_campaign(root: Path) -> Campaign:
    path = root / "campaign.json"
    if not root.is_dir():
        raise SummaryError(f"{root} is not a folder; pass a campaign folder (the --out of 'dlfuzz fuzz')")
    try:
        text = path.read_text()
    except OSError as e:
        raise SummaryError(f"{path}: cannot read ({e.strerror}); is {root} a campaign folder (the --out of 'dlfuzz fuzz')?") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise SummaryError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); the file is corrupt, "
                           f"re-run the campaign with the same --out to rewrite it") from None
    if not isinstance(state, dict):
        raise SummaryError(f"{path}: expected a JSON object, got {type(state).__name__}; is this a dlfuzz campaign.json?")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise SummaryError(f"{path}: missing {', '.join(missing)}; is this a dlfuzz campaign.json?")
    bugs, unreadable = [], []
    for p in sorted((root / "bugs").glob("*/bug.json")):
        try:
            bug = json.loads(p.read_text())
            if not isinstance(bug, dict):
                raise ValueError
        except (OSError, ValueError):
            unreadable.append(p.parent.name)
            continue
        bug.setdefault("folder", p.parent.name)
        bugs.append(bug)
    bugs.sort(key=lambda b: (str(b.get("first_seen", "")), str(b.get("folder", ""))))
    return Campaign(root, state, bugs, unreadable)


# ---- the bug table -------------------------------------------------------------------------

def _short(op: str) -> str:
    return op.split(".")[-1] if op.startswith("core.") else op


EAGER_VALIDATION = "eager-validation"
_INTERNAL = re.compile(r"^torch\.(native_|_|ops\.)|^torch\.Tensor\._")


def is_internal_api(op: str) -> bool:
    """An operator id naming a private or internal API (``torch.native_group_norm#1f2e``,
    ``torch._C._nn.gelu``): not what users call, so its gaps weigh less."""
    return bool(_INTERNAL.match(op.split("#")[0]))


def partition(bugs: Sequence[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """(positions of the compiler bugs, positions of the eager validation gaps)."""
    gaps = [i for i, b in enumerate(bugs) if b.get("kind") == EAGER_VALIDATION]
    return [i for i, b in enumerate(bugs) if b.get("kind") != EAGER_VALIDATION], gaps


def bug_row(bug: dict[str, Any]) -> dict[str, str]:
    ops = bug.get("operators_reduced") or bug.get("operators") or []
    before = bug.get("operators_before", bug.get("operator_nodes"))
    after = bug.get("operators_after")
    size = f"{before} → {after}" if after is not None and before is not None else (f"{before}" if before is not None else "?")
    backends = list(bug.get("backends", []))
    stage = bug.get("stage") or ""
    return {
        "kind": f"{bug.get('kind', '?')}{' at ' + stage if stage else ''}",
        "backends": " vs ".join(backends) if backends else "?",
        "operators": ", ".join(_short(o) + (" (internal)" if is_internal_api(o) else "") for o in ops) or "?",
        "first seen": str(bug.get("first_seen", "?")).replace("T", " "),
        "size": size,
        "count": str(bug.get("count", 1)),
        "folder": str(bug.get("folder", "")),
    }


def _by_count(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def _batches(b: dict[str, Any]) -> str:
    if not b:
        return "not recorded"
    return (f"{b.get('failed', 0)} failed and split ({b.get('batch_only', 0)} batch-only: no member failed alone); "
            f"{b.get('sampled', 0)} passing batches re-checked member by member "
            f"({b.get('alone_only', 0)} members failed alone)")


def _checks(checks: dict[str, Any]) -> str:
    """``campaign.json``'s ``checks`` as one line: per check kind, the valid cases whose
    plan had it, the calls of compiled models it made and the distinct bugs it found."""
    kinds = ("forward", "dynamic", "backward", "layout", "mutation")
    parts = [f"{k} {checks.get(f'cases: {k}', 0)} / {checks.get(f'calls: {k}', 0)} / {checks.get(f'bugs: {k}', 0)}"
             for k in kinds if any(checks.get(f"{what}: {k}") for what in ("cases", "calls", "bugs"))]
    extra = [f"{checks.get('compiles', 0)} compiles"]
    if checks.get("dynamic: unexpected recompile"):
        extra.append(f"{checks['dynamic: unexpected recompile']} unexpected recompiles")
    return "; ".join(parts + extra) if parts else "none"


def _figures(state: dict[str, Any]) -> list[tuple[str, str]]:
    minutes = float(state.get("seconds", 0)) / 60
    by_kind = state.get("bugs_by_kind") or {}
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items()))
    cases, valid = int(state.get("cases", 0)), int(state.get("valid", 0))
    share = f", {valid / cases:.0%}" if cases else ""
    low = " (low: most cases test nothing; see skipped)" if cases and valid / cases < 0.9 else ""
    skipped = state.get("skipped") or {}
    rows = [
        ("backends", ", ".join(state.get("backends", [])) + " (the first is the reference)"),
        ("cases", f"{cases} ({valid} valid{share}){low}"),
        ("skipped cases (not judged), by reason", _by_count(skipped)),
        ("excused output elements, by reason", _by_count(state.get("excused") or {})),
        ("batches", _batches(state.get("batches") or {})),
        ("value modes of valid cases", _by_count(state.get("values_modes") or {})),
        ("checks (cases / calls / bugs per kind; compiles)", _checks(state.get("checks") or {})),
        ("planned calls declined by the reference, by reason", _by_count(
            {k.removeprefix("declined: "): v for k, v in (state.get("checks") or {}).items() if k.startswith("declined: ")})),
        ("parked (failures naming no operator, awaiting reduction)", str(state.get("parked", 0))),
        ("time", f"{minutes:.1f} min, {state.get('cases_per_minute', 0)} cases/min"),
        ("distinct bugs", f"{state.get('bugs', 0)}" + (f" ({kinds})" if kinds else "")),
        ("sightings", str(state.get("sightings", 0))),
        ("ignored (known bugs)", str(state.get("ignored", 0))),
        ("operators covered", str(state.get("distinct_ops", len(state.get("ops") or {})))),
        ("seed, max nodes", f"{state.get('seed', '?')}, {state.get('max_nodes', '?')}"),
    ]
    if state.get("stopped"):
        rows.insert(1, ("stopped early", str(state["stopped"])))
    rows += _coverage_rows(state.get("coverage") or {})
    merged = _merged_from(state)
    if merged:  # dlfuzz merge: each input's seed and figures instead (the top-level seed is the first's)
        rows = [r for r in rows if r[0] != "seed, max nodes"] + [("merged from", "; ".join(
            f"{_label(e)} (seed {e.get('seed', '?')}, max nodes {e.get('max_nodes', '?')}): "
            f"{e.get('cases', 0)} cases, {e.get('bugs', 0)} bugs, {float(e.get('seconds') or 0) / 60:.1f} min"
            for e in merged))]
    return rows


def _coverage_rows(cov: dict[str, Any]) -> list[tuple[str, str]]:
    """``campaign.json``'s ``coverage`` (``dlfuzz fuzz --coverage``) as figure rows."""
    if not cov:
        return []
    folders = ", ".join(Path(str(s)).name for s in cov.get("sources") or [])
    rows = [("compiler coverage (lines / branches)",
             f"{cov.get('lines_pct', 0)}% / {cov.get('branches_pct', 0)}% of {folders} ({cov.get('lines', 0)} of "
             f"{cov.get('lines_total', 0)} lines, {cov.get('branches', 0)} of {cov.get('branches_total', 0)} branches; "
             f"{'guided' if cov.get('guided') else 'not guided'})" if "lines_pct" in cov else str(cov.get("error", "none yet")))]
    jobs = cov.get("jobs") or {}
    if cov.get("new_arcs"):
        rows.append((f"new arcs by the kinds in the {jobs.get('adding', 0)} of {jobs.get('measured', 0)} checks that "
                     f"added some", _by_count(cov["new_arcs"])))
    return rows


def _coverage_timeline(state: dict[str, Any]) -> list[tuple[float, float, float]]:
    points = []
    for p in (state.get("coverage") or {}).get("timeline") or []:
        try:
            points.append((float(p[0]), float(p[1]), float(p[2])))
        except (TypeError, ValueError, IndexError):
            continue
    return sorted(points)


def _merged_from(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in state.get("merged_from") or [] if isinstance(e, dict)]


def _label(entry: dict[str, Any]) -> str:
    return str(entry.get("label") or Path(str(entry.get("folder", "?"))).name)


def _timelines(state: dict[str, Any]) -> list[tuple[str, list[tuple[float, float, float]]]]:
    """(title, points) per timeline: a merged campaign keeps each input's apart (titled by
    its folder), then its own since the merge if it was resumed."""
    merged = [(_label(e), _timeline(e)) for e in _merged_from(state)]
    own = _timeline(state)
    if not merged:
        return [("", own)]
    return merged + ([("since the merge", own)] if own else [])


def _timeline(state: dict[str, Any]) -> list[tuple[float, float, float]]:
    points = []
    for p in state.get("timeline") or []:
        try:
            points.append((float(p[0]), float(p[1]), float(p[2])))
        except (TypeError, ValueError, IndexError):
            continue
    return sorted(points)


def _ops(state: dict[str, Any]) -> list[tuple[str, int]]:
    ops = state.get("ops") or {}
    items = [(str(k), int(v)) for k, v in ops.items() if isinstance(v, (int, float))]
    return sorted(items, key=lambda kv: (-kv[1], kv[0]))


def _symptom(bug: dict[str, Any]) -> str:
    verdict = bug.get("verdict")
    if isinstance(verdict, dict) and verdict.get("message"):
        return normalize_message(str(verdict["message"]))  # today's normalization, for older campaigns too
    parts = bug.get("signature_parts")
    return str(parts.get("symptom", "")) if isinstance(parts, dict) else ""


def root_cause_groups(bugs: Sequence[dict[str, Any]]) -> list[tuple[str, list[int]]]:
    """Groups of two or more bugs (positions in ``bugs``) that likely share one root cause.

    A signature keeps the operators a crash is pinned on, so one compiler fault met
    through several operator pairs (``min`` of ``ge``, of ``lt``, of ``logical_and``:
    the same missing C++ overload) is several bugs, each with its own minimal
    reproducer, which is right for a fixer who wants every trigger. Triage wants them
    together: crashes of one backend at one stage with the same normalized message are
    listed as one group. Mismatches and aborts carry no message to compare, so they are
    never grouped.
    """
    groups: dict[tuple, list[int]] = {}
    for i, bug in enumerate(bugs):
        symptom = _symptom(bug) if bug.get("kind") in ("crash", EAGER_VALIDATION) else ""
        if not symptom:
            continue
        key = (tuple(bug.get("backends", [])), str(bug.get("stage", "")), symptom, bug.get("kind"))
        groups.setdefault(key, []).append(i)
    return [(key[2], members) for key, members in groups.items() if len(members) > 1]


def _groups(n: int) -> str:
    return f"{n} group" if n == 1 else f"{n} groups"


def _group_line(bugs: Sequence[dict[str, Any]], members: list[int]) -> tuple[str, str]:
    """(which bugs, and the operators they all have) for one root-cause group."""
    op_sets = [set(bugs[i].get("operators_reduced") or bugs[i].get("operators") or []) for i in members]
    common = sorted(set.intersection(*op_sets)) if op_sets else []
    which = ", ".join(f"#{i + 1}" for i in members)
    shared = f"operators in all: {', '.join(_short(o) for o in common)}" if common else "no operator in all of them"
    return which, shared


COLUMNS = ("kind", "backends", "operators", "first seen", "size", "count")
HEADERS = {"size": "operator nodes (found → reduced)"}
GAPS_NOTE = ("Calls the eager reference runs that a compiler's fake-tensor/meta checks reject at compile time: "
             "eager's input validation is missing (or the meta function is too strict). Not compiler crashes; "
             "operators marked (internal) are not public APIs.")


def _table_markdown(bugs: Sequence[dict[str, Any]], positions: Sequence[int]) -> list[str]:
    lines = ["| # | " + " | ".join(HEADERS.get(k, k) for k in COLUMNS) + " | report |",
             "|" + " --- |" * (len(COLUMNS) + 2)]
    for i in positions:
        row = bug_row(bugs[i])
        cells = [row[k].replace("|", "\\|") for k in COLUMNS]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + f" | [report](bugs/{row['folder']}/report.md) |")
    return lines


def _table_html(bugs: Sequence[dict[str, Any]], positions: Sequence[int]) -> list[str]:
    e = html.escape
    out = ["<table><tr><th>#</th>" + "".join(f"<th>{e(HEADERS.get(k, k))}</th>" for k in COLUMNS) + "<th>report</th></tr>"]
    for i in positions:
        row = bug_row(bugs[i])
        cells = "".join(f'<td{" class=n" if k in ("count",) else ""}>{e(row[k])}</td>' for k in COLUMNS)
        link = f'<a href="bugs/{e(row["folder"])}/report.md">{e(row["folder"])}</a>'
        out.append(f"<tr><td class=n>{i + 1}</td>{cells}<td>{link}</td></tr>")
    return out + ["</table>"]


def render_markdown(c: Campaign) -> str:
    lines = [f"# dlfuzz campaign summary: {c.root.name}", ""]
    lines += ["| figure | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in _figures(c.state)] + [""]
    general, gaps = partition(c.bugs)
    lines += [f"## Bugs ({len(general)})", ""]
    lines += _table_markdown(c.bugs, general) if general else ["No bugs found."]
    if gaps:
        lines += ["", f"## Eager validation gaps ({len(gaps)})", "", GAPS_NOTE, ""] + _table_markdown(c.bugs, gaps)
    groups = root_cause_groups(c.bugs)
    if groups:
        lines += ["", f"## Likely the same root cause ({_groups(len(groups))})", ""]
        for symptom, members in groups:
            which, shared = _group_line(c.bugs, members)
            lines.append(f"- bugs {which} ({shared}): `{symptom}`")
    if c.unreadable:
        lines += ["", f"Unreadable bug folders (no valid bug.json): {', '.join(c.unreadable)}."]
    lines += ["", "## Cases and distinct bugs over time", ""]
    for i, (name, timeline) in enumerate(_timelines(c.state)):
        if name:
            lines += [""] * bool(i) + [f"### {name}", ""]
        if timeline:
            step = max(1, len(timeline) // 10)
            shown = timeline[::step] + ([timeline[-1]] if (len(timeline) - 1) % step else [])
            lines += ["| seconds | cases | distinct bugs |", "| ---: | ---: | ---: |"]
            lines += [f"| {s:.0f} | {int(n)} | {int(b)} |" for s, n, b in shown]
        else:
            lines.append("No timeline recorded.")
    cov = _coverage_timeline(c.state)
    if cov:
        lines += ["", "## Compiler coverage over time", "", "| seconds | lines % | branches % |", "| ---: | ---: | ---: |"]
        step = max(1, len(cov) // 10)
        lines += [f"| {s:.0f} | {ln:.2f} | {b:.2f} |" for s, ln, b in cov[::step] + cov[-1:] * bool((len(cov) - 1) % step)]
    ops = _ops(c.state)
    lines += ["", f"## Operator frequency ({len(ops)} operators, valid cases using each)", ""]
    if ops:
        lines += ["| operator | cases |", "| --- | ---: |"] + [f"| {op} | {n} |" for op, n in ops]
    else:
        lines.append("No operators recorded.")
    lines += ["", "The HTML version with plots: `summary.html`."]
    return "\n".join(lines) + "\n"


# ---- SVG plots -----------------------------------------------------------------------------

def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    import math

    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag  # pragma: no cover


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 10 else f"{v:.1f}"


def line_chart(points: Sequence[tuple[float, float]], title: str, xlabel: str, ylabel: str, color: str,
               width: int = 560, height: int = 240) -> str:
    left, right, top, bottom = 56, 16, 28, 40
    pw, ph = width - left - right, height - top - bottom
    xmax = _nice_max(max((p[0] for p in points), default=0))
    ymax = _nice_max(max((p[1] for p in points), default=0))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="18" text-anchor="middle" class="t">{html.escape(title)}</text>']
    for i in range(5):
        y = top + ph - ph * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" class="g"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(ymax * i / 4)}</text>')
        x = left + pw * i / 4
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle">{_num(xmax * i / 4)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" class="a"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" class="a"/>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{html.escape(xlabel)}</text>')
    parts.append(f'<text x="14" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {top + ph / 2})">'
                 f'{html.escape(ylabel)}</text>')
    if points:
        coords = " ".join(f"{left + pw * x / xmax:.1f},{top + ph - ph * y / ymax:.1f}" for x, y in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
    else:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle">no data</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(items: Sequence[tuple[str, int]], title: str, color: str = "#4c78a8", width: int = 640) -> str:
    bar, gap, left, top = 14, 4, 190, 28
    height = top + len(items) * (bar + gap) + 12
    vmax = max((v for _, v in items), default=0) or 1
    pw = width - left - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="18" text-anchor="middle" class="t">{html.escape(title)}</text>']
    for i, (label, v) in enumerate(items):
        y = top + i * (bar + gap)
        w = pw * v / vmax
        parts.append(f'<text x="{left - 6}" y="{y + bar - 3}" text-anchor="end">{html.escape(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + bar - 3}">{v}</text>')
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; }
svg { display: block; margin: 0.5em 0 1.5em; font-size: 11px; }
svg text { fill: #333; }
svg text.t { font-size: 13px; font-weight: 600; }
svg line.g { stroke: #e5e5e5; }
svg line.a { stroke: #777; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
"""


def render_html(c: Campaign) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>dlfuzz campaign summary: {e(c.root.name)}</title>", f"<style>{_STYLE}</style></head><body>",
           f"<h1>dlfuzz campaign summary: {e(c.root.name)}</h1>", "<table>"]
    out += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _figures(c.state)]
    general, gaps = partition(c.bugs)
    out += ["</table>", f"<h2>Bugs ({len(general)})</h2>"]
    out += _table_html(c.bugs, general) if general else ["<p>No bugs found.</p>"]
    if gaps:
        out += [f"<h2>Eager validation gaps ({len(gaps)})</h2>", f"<p>{e(GAPS_NOTE)}</p>"] + _table_html(c.bugs, gaps)
    groups = root_cause_groups(c.bugs)
    if groups:
        out += [f"<h2>Likely the same root cause ({_groups(len(groups))})</h2>", "<ul>"]
        for symptom, members in groups:
            which, shared = _group_line(c.bugs, members)
            out.append(f"<li>bugs {e(which)} ({e(shared)}): <code>{e(symptom)}</code></li>")
        out.append("</ul>")
    if c.unreadable:
        out.append(f"<p>Unreadable bug folders (no valid bug.json): {e(', '.join(c.unreadable))}.</p>")
    out += ["<h2>Cases and distinct bugs over time</h2>"]
    for name, timeline in _timelines(c.state):
        of = f" ({name})" if name else ""
        out += ['<div class="plots">',
                line_chart([(s, n) for s, n, _ in timeline], "cases" + of, "seconds", "cases", "#4c78a8"),
                line_chart([(s, b) for s, _, b in timeline], "distinct bugs" + of, "seconds", "bugs", "#e45756"),
                "</div>"]
    cov = _coverage_timeline(c.state)
    if cov:
        out += ["<h2>Compiler coverage over time</h2>", '<div class="plots">',
                line_chart([(s, ln) for s, ln, _ in cov], "line coverage", "seconds", "lines %", "#54a24b"),
                line_chart([(s, b) for s, _, b in cov], "branch coverage", "seconds", "branches %", "#b279a2"),
                "</div>"]
    ops = _ops(c.state)
    out += [f"<h2>Operator frequency ({len(ops)} operators)</h2>",
            bar_chart([(_short(op), n) for op, n in ops], "valid cases using each operator") if ops
            else "<p>No operators recorded.</p>",
            "</body></html>"]
    return "\n".join(out) + "\n"


def write_summary(root: Path) -> tuple[Path, Path, Campaign]:
    """Write ``root/summary.md`` and ``root/summary.html``; raises :class:`SummaryError`."""
    c = load_campaign(root)
    md, page = root / "summary.md", root / "summary.html"
    try:
        write_atomic(md, render_markdown(c))
        write_atomic(page, render_html(c))
    except OSError as e:
        raise SummaryError(f"cannot write the summary into {root} ({e.strerror}); check the folder's permissions") from None
    return md, page, c
