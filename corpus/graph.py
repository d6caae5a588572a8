"""The model: an SSA graph over a ``networkx.MultiDiGraph``.

Nodes are integers. A node is a *leaf* (``input``: a model input; ``const``: a weight
that the model owns) or an *op* node naming its operator by a stable id
(``core.Conv2d``) with concrete attributes. Every node produces one or more values; a
value is addressed as ``(node, index)``. An edge ``u -> v`` carries ``out`` (which
value of ``u``) and ``arg`` (which argument of ``v``). The graph's outputs are an
explicit list of values, so that a reducer can cut outputs without touching nodes.

The graph holds only concrete types: symbolic reasoning (z3) happens in the generator
and is concretized before a node is added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import networkx as nx

from corpus.tensor_type import TensorType

Value = tuple[int, int]
LEAF_KINDS = ("input", "const")


@dataclass
class Node:
    kind: str  # "input" | "const" | "op"
    types: list[TensorType]
    op: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        data: dict[str, Any] = {"kind": self.kind, "types": [t.to_json() for t in self.types]}
        if self.kind == "op":
            data["op"] = self.op
            data["attrs"] = self.attrs
        return data


class Graph:
    def __init__(self) -> None:
        self._g = nx.MultiDiGraph()
        self._next = 0
        self.outputs: list[Value] = []

    # ---- construction -------------------------------------------------------------
    def _new_id(self) -> int:
        nid = self._next
        self._next += 1
        return nid

    def add_leaf(self, ttype: TensorType, kind: str = "input") -> Value:
        if kind not in LEAF_KINDS:
            raise ValueError(f"leaf kind must be one of {LEAF_KINDS}, not {kind!r}")
        nid = self._new_id()
        self._g.add_node(nid, data=Node(kind, [ttype]))
        return (nid, 0)

    def add_op(self, op: str, attrs: dict[str, Any], inputs: list[Value], out_types: list[TensorType]) -> list[Value]:
        for v in inputs:
            self._check_value(v)
        nid = self._new_id()
        self._g.add_node(nid, data=Node("op", list(out_types), op, dict(attrs)))
        for arg, (src, out) in enumerate(inputs):
            self._g.add_edge(src, nid, out=out, arg=arg)
        return [(nid, i) for i in range(len(out_types))]

    def produce_leaf_by_op(self, leaf: int, op: str, attrs: dict[str, Any], inputs: list[Value]) -> Value:
        """Backward insertion: the leaf ``leaf`` becomes the output of a new op node.

        The node keeps its id, so every consumer and graph output stays valid.
        """
        node = self.node(leaf)
        if node.kind not in LEAF_KINDS:
            raise ValueError(f"node {leaf} is not a leaf")
        for v in inputs:
            self._check_value(v)
        self._g.nodes[leaf]["data"] = Node("op", list(node.types), op, dict(attrs))
        for arg, (src, out) in enumerate(inputs):
            self._g.add_edge(src, leaf, out=out, arg=arg)
        return (leaf, 0)

    def _check_value(self, v: Value) -> None:
        nid, idx = v
        if nid not in self._g:
            raise KeyError(f"no node {nid}")
        if not 0 <= idx < len(self.node(nid).types):
            raise KeyError(f"node {nid} has no output {idx}")

    # ---- queries ------------------------------------------------------------------
    def node(self, nid: int) -> Node:
        return self._g.nodes[nid]["data"]

    def nodes(self) -> list[int]:
        """Node ids in a deterministic topological order (ties broken by id)."""
        return list(nx.lexicographical_topological_sort(self._g))

    def op_nodes(self) -> list[int]:
        return [n for n in self.nodes() if self.node(n).kind == "op"]

    def leaves(self, kind: str | None = None) -> list[int]:
        return [n for n in sorted(self._g.nodes) if self.node(n).kind in LEAF_KINDS and (kind is None or self.node(n).kind == kind)]

    def type_of(self, v: Value) -> TensorType:
        return self.node(v[0]).types[v[1]]

    def inputs_of(self, nid: int) -> list[Value]:
        edges = sorted(self._g.in_edges(nid, data=True), key=lambda e: e[2]["arg"])
        return [(u, d["out"]) for u, _, d in edges]

    def users_of(self, v: Value) -> list[tuple[int, int]]:
        """(consumer node, argument position) for every use of ``v``."""
        return sorted((w, d["arg"]) for _, w, d in self._g.out_edges(v[0], data=True) if d["out"] == v[1])

    def values(self) -> Iterable[Value]:
        for n in self.nodes():
            for i in range(len(self.node(n).types)):
                yield (n, i)

    def unused_values(self) -> list[Value]:
        return [v for v in self.values() if self.node(v[0]).kind == "op" and not self.users_of(v)]

    def op_ids(self) -> list[str]:
        return [self.node(n).op for n in self.op_nodes()]  # type: ignore[misc]

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    @property
    def nx(self) -> nx.MultiDiGraph:
        """The underlying networkx graph (read-only use, please)."""
        return self._g

    # ---- editing (reduction) ----------------------------------------------------------
    def remove_node(self, nid: int) -> None:
        self._g.remove_node(nid)
        self.outputs = [v for v in self.outputs if v[0] != nid]

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every consumer of ``old`` (and the graph outputs) use ``new`` instead."""
        for _, w, key, d in list(self._g.out_edges(old[0], keys=True, data=True)):
            if d["out"] == old[1]:
                self._g.remove_edge(old[0], w, key)
                self._g.add_edge(new[0], w, out=new[1], arg=d["arg"])
        self.outputs = [new if v == old else v for v in self.outputs]

    def prune(self) -> None:
        """Drop nodes that no output depends on."""
        keep = set()
        for nid, _ in self.outputs:
            keep.add(nid)
            keep |= nx.ancestors(self._g, nid)
        for n in list(self._g.nodes):
            if n not in keep:
                self._g.remove_node(n)

    def absorb(self, other: "Graph") -> int:
        """Copy ``other``'s nodes and edges in, ids shifted past this graph's; returns the
        shift (``other``'s node ``n`` is now ``n + shift``). Outputs are left to the caller."""
        shift = self._next
        for n in other._g.nodes:
            node = other.node(n)
            self._g.add_node(n + shift, data=Node(node.kind, list(node.types), node.op, dict(node.attrs)))
        for u, v, d in other._g.edges(data=True):
            self._g.add_edge(u + shift, v + shift, **d)
        self._next = shift + other._next
        return shift

    def copy(self) -> "Graph":
        return Graph.from_json(self.to_json())

    # ---- serialization ------------------------------------------------------------
    def to_json(self) -> dict:
        nodes = []
        for n in self.nodes():
            d = self.node(n).to_json()
            d["id"] = n
            if d["kind"] == "op":
                d["inputs"] = [list(v) for v in self.inputs_of(n)]
            nodes.append(d)
        return {"nodes": nodes, "outputs": [list(v) for v in self.outputs]}

    @classmethod
    def from_json(cls, data: dict) -> "Graph":
        g = cls()
        for d in data["nodes"]:
            nid = int(d["id"])
            types = [TensorType.from_json(t) for t in d["types"]]
            kind = d["kind"]
            if kind == "op":
                g._g.add_node(nid, data=Node("op", types, d["op"], dict(d.get("attrs", {}))))
            elif kind in LEAF_KINDS:
                g._g.add_node(nid, data=Node(kind, types))
            else:
                raise ValueError(f"node {nid} has unknown kind {kind!r}")
            g._next = max(g._next, nid + 1)
        for d in data["nodes"]:
            if d["kind"] == "op":
                for arg, (src, out) in enumerate(d["inputs"]):
                    if src not in g._g:
                        raise ValueError(f"node {d['id']} reads node {src}, which does not exist")
                    g._g.add_edge(int(src), int(d["id"]), out=int(out), arg=arg)
        g.outputs = [(int(a), int(b)) for a, b in data["outputs"]]
        for v in g.outputs:
            g._check_value(v)
        if not nx.is_directed_acyclic_graph(g._g):
            raise ValueError("graph has a cycle")
        return g
