"""Imports flow one way: corpus -> rules -> oracles -> reports -> fuzzer, and no module
imports itself back through others (an import circle, lazy imports included)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["corpus", "rules", "oracles", "reports", "fuzzer"]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(ORDER)


def layering_violations(root: Path = ROOT) -> list[str]:
    bad = []
    for i, pkg in enumerate(ORDER):
        allowed = set(ORDER[: i + 1])
        for path in sorted((root / pkg).rglob("*.py")):
            for dep in sorted(imported_packages(path) - allowed):
                bad.append(f"{path.relative_to(root)} imports {dep}")
    return bad


def test_imports_flow_one_way():
    assert layering_violations() == []


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Our modules ``path`` imports anywhere in it (function-level lazy imports too).
    ``from pkg import sub`` of a submodule counts as importing ``pkg.sub`` only."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            found |= subs
            if len(subs) < len(node.names) and node.module in known:
                found.add(node.module)
    return found


def import_circles(root: Path = ROOT) -> list[list[str]]:
    import networkx as nx

    paths = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
             for pkg in ORDER for p in (root / pkg).rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in paths.items():
        graph.add_node(name)
        graph.add_edges_from((name, dep) for dep in imported_modules(path, set(paths)) if dep != name)
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def test_no_import_circles():
    assert import_circles() == []


def test_circle_checker_catches_a_lazy_circle(tmp_path):
    for pkg in ORDER:
        (tmp_path / pkg).mkdir()
    (tmp_path / "fuzzer" / "cli.py").write_text("def main():\n    from fuzzer import commands\n")
    (tmp_path / "fuzzer" / "commands.py").write_text("from fuzzer.cli import main\n")
    (tmp_path / "fuzzer" / "leaf.py").write_text("import fuzzer.cli\n")
    assert import_circles(tmp_path) == [["fuzzer.cli", "fuzzer.commands"]]


def test_checker_catches_a_backward_import(tmp_path):
    for pkg in ORDER:
        (tmp_path / pkg).mkdir()
    (tmp_path / "corpus" / "bad.py").write_text("from fuzzer.cli import main\n")
    (tmp_path / "rules" / "fine.py").write_text("import corpus.graph\n")
    assert layering_violations(tmp_path) == ["corpus/bad.py imports fuzzer"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = [b.split("```")[0].strip() for b in readme.split("```sh\n")[1:]]
    assert len(blocks) >= 2
    assert blocks[1] in ci
