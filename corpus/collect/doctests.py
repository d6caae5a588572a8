"""The ``doctest`` source: the ``>>>`` examples in the frameworks' docstrings, run under the tracer.

Each docstring is one unit: ``doctest.DocTestParser`` extracts its examples, which run in
order in a fresh namespace with the framework imported; printed output is ignored, an
example marked ``+SKIP`` is skipped, and an example that raises stops its docstring (the
raising call is recorded as invalid). Global settings an example may change (the default
dtype, grad mode, print options) are restored after each docstring.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
from typing import Callable, Iterator


def _examples(doc: str) -> list:
    try:
        return doctest.DocTestParser().get_examples(doc)
    except ValueError:  # malformed example indentation
        return []


def _body(adapter, name: str, examples: list) -> Callable:
    def body(traced) -> None:
        ns = adapter.doctest_namespace()
        adapter.reseed(0)
        sink = io.StringIO()
        try:
            for ex in examples:
                if ex.options.get(doctest.SKIP):
                    continue
                try:
                    code = compile(ex.source, f"<doctest {name}>", "exec")
                except SyntaxError:
                    break
                failed = []

                def run(code=code):
                    try:
                        exec(code, ns)
                    except BaseException as e:  # SystemExit too: an example never ends the collection
                        if isinstance(e, KeyboardInterrupt):
                            raise
                        failed.append(e)

                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    if not traced(run):
                        return
                sink.seek(0)
                sink.truncate()
                if failed:
                    break
        finally:
            reset_state(adapter)

    return body


def reset_state(adapter) -> None:
    if adapter.FRAMEWORK == "torch":
        import torch

        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)
        torch.set_printoptions(profile="default")
        try:
            torch.set_default_device(None)
        except Exception:
            pass
        torch.set_num_threads(1)
    else:
        import tensorflow as tf

        try:
            tf.config.run_functions_eagerly(False)
        except Exception:
            pass


def units(adapter, only: set[str] | None = None) -> Iterator[tuple[str, Callable]]:
    for name, doc in adapter.doctest_targets():
        if only and name not in only and name.rsplit(".", 1)[-1] not in only:
            continue
        examples = _examples(doc)
        if examples:
            yield name, _body(adapter, name, examples)


def scratch_dir() -> str:
    """A private working folder, so that examples that write files leave no trace."""
    import tempfile

    path = tempfile.mkdtemp(prefix="dlfuzz-doctest-")
    os.chdir(path)
    return path
