"""A sandbox worker: executes recorded calls with random tensors, one JSON line each.

    python -m corpus.collect.worker FRAMEWORK

Protocol (on the original stdout, which is moved off fd 1 so that the calls' own prints
cannot corrupt it): the worker writes ``{"ready": true}`` once the framework is loaded,
then answers each request line ``{"id", "api", "args", "kwargs", "seed"}`` with
``{"id", "status", "error", "outputs"}``; status is ``ok``, ``error`` (the call raised) or
``unusable`` (the call cannot be rebuilt: an unknown API, an opaque argument).
"""

from __future__ import annotations

import json
import os
import sys
import warnings


def main(argv: list[str]) -> int:
    framework = argv[0]
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")

    from corpus.collect import adapter as get_adapter
    from corpus.collect.watchdog import die_with_parent
    from corpus.trace import error_line

    die_with_parent()
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a call that aborts leaves no core file
    except (ImportError, ValueError, OSError):
        pass
    ad = get_adapter(framework)
    ad.setup()
    proto.write(json.dumps({"ready": True}) + "\n")
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        if not line.strip():
            continue
        req = json.loads(line)
        resp = {"id": req.get("id"), "status": "ok", "error": None, "outputs": None}
        try:
            prepared = ad.prepare(req["api"], req["args"], req["kwargs"], int(req.get("seed", 0)))
        except Exception as e:
            resp.update(status="unusable", error=error_line(e))
        else:
            try:
                out = prepared()
                resp["outputs"] = ad.encode(out)
            except Exception as e:
                resp.update(status="error", error=error_line(e))
        try:
            text = json.dumps(resp, allow_nan=False)
        except (TypeError, ValueError):
            resp["outputs"] = None
            text = json.dumps(resp, allow_nan=False, default=str)
        proto.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
