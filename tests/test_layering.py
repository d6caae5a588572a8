"""Imports flow one way: corpus -> rules -> oracles -> reports -> fuzzer."""

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
