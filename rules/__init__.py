"""rules: what makes an operator valid, and how it becomes framework code.

Second stage of ``corpus -> rules -> oracles -> reports -> fuzzer``; imports only corpus.
"""

from rules.spec import FRAMEWORKS, OpSpec, SymTensor

__all__ = ["FRAMEWORKS", "OpSpec", "SymTensor"]
