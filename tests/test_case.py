"""The Case JSON form: round trip, and one clear error line for a bad file."""

import json

import pytest

from corpus import SCHEMA_VERSION, Case, CaseFormatError, Graph, TensorType, ValueSpec


def small_case() -> Case:
    g = Graph()
    x = g.add_leaf(TensorType((2, 3), "float32"))
    w = g.add_leaf(TensorType((3,), "float32"), "const")
    g.outputs = g.add_op("core.Add", {}, [x, w], [TensorType((2, 3), "float32")])
    return Case(g, "torch", {0: ValueSpec(1, -1.0, 1.0), 1: ValueSpec(2, 0.5, 2.0)}, seed=7)


def test_round_trip(tmp_path):
    case = small_case()
    case.save(tmp_path / "case.json")
    back = Case.load(tmp_path / "case.json")
    assert back.to_json() == case.to_json()
    assert back.graph.inputs_of(2) == [(0, 0), (1, 0)]


@pytest.mark.parametrize("text,fragment", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"graph": {}}', "no integer 'schema'"),
    (json.dumps({"schema": SCHEMA_VERSION + 1}), "newer than this dlfuzz understands"),
    (json.dumps({"schema": SCHEMA_VERSION, "framework": "torch"}), "malformed case"),
])
def test_bad_file_gives_one_line(tmp_path, text, fragment):
    p = tmp_path / "case.json"
    p.write_text(text)
    with pytest.raises(CaseFormatError) as info:
        Case.load(p)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and str(p) in message


def test_dangling_edge_is_rejected():
    data = small_case().to_json()
    data["graph"]["nodes"][-1]["inputs"][0] = [99, 0]
    with pytest.raises(CaseFormatError, match="does not exist"):
        Case.from_json(data)
