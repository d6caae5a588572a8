"""corpus: the data model (TensorType, Graph, Case) and its persistence.

The first stage of ``corpus -> rules -> oracles -> reports -> fuzzer``: it imports none
of the others.
"""

from corpus.case import SCHEMA_VERSION, Case, CaseFormatError, write_atomic
from corpus.graph import Graph, Node, Value
from corpus.tensor_type import ALL_DTYPES, BOOL_DTYPES, FLOAT_DTYPES, INT_DTYPES, TensorType
from corpus.values import ValueSpec, make_value

__all__ = [
    "ALL_DTYPES", "BOOL_DTYPES", "FLOAT_DTYPES", "INT_DTYPES", "SCHEMA_VERSION",
    "Case", "CaseFormatError", "Graph", "Node", "TensorType", "Value", "ValueSpec",
    "make_value", "write_atomic",
]
