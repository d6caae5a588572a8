"""What the frameworks print never reaches the user's terminal: it goes to the campaign's
log, and the terminal shows dlfuzz's own lines only."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer.quiet import native_output_to

ROOT = Path(__file__).resolve().parent.parent


def test_native_writes_prints_and_warnings_go_to_the_log(tmp_path):
    """In a process of its own: pytest's capture would otherwise stand in for print()."""
    log = tmp_path / "logs" / "campaign.log"
    code = f"""
import os, warnings
from pathlib import Path
from fuzzer.quiet import native_output_to
with native_output_to(Path({str(log)!r})) as terminal:
    os.write(1, b"oneMKL ERROR: Parameter 4 was incorrect\\n")
    os.write(2, b"I0000 oneDNN custom operations are on\\n")
    print("a model printed this")
    warnings.warn("torch.foo is deprecated", DeprecationWarning, stacklevel=1)
    terminal.write("cases 3\\n")
print("after")
"""
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "after\n" and done.stderr == "cases 3\n"
    text = log.read_text()
    for line in ("oneMKL ERROR", "oneDNN", "a model printed this", "torch.foo is deprecated"):
        assert line in text


@pytest.mark.tensorflow
def test_a_torch_vs_tensorflow_campaign_prints_only_its_own_lines(tmp_path):
    """Importing TensorFlow prints banners, and the models' eager runs in the parent print
    oneMKL errors and deprecation warnings: none of it on stdout or stderr."""
    # let TensorFlow print its banners (dlfuzz quiets them only where the user has not chosen):
    # what is printed then does not hang on whether seed 11's models happen to warn
    env = dict(os.environ, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="0")
    cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", "torch.eager,tf.eager", "--time", "5m",
           "--max-cases", "40", "--seed", "11", "--reduce-time", "0", "--out", str(tmp_path)]
    done = subprocess.run(cmd + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    [line] = done.stdout.splitlines()
    assert json.loads(line)["cases"] >= 40
    assert (tmp_path / "logs" / "campaign.log").stat().st_size > 0  # what was printed is kept


# Every model under test prints, warns and writes to descriptor 2 on each forward call:
# in this process (value search, trial runs) and in the sandbox workers (the reference's
# eager runs). Installed through sitecustomize when torch is first imported, so that the
# campaign runs exactly as `dlfuzz fuzz` does.
NOISY_SITECUSTOMIZE = '''
import importlib.abc, importlib.machinery, os, sys, warnings

def _noise(module, args):
    import torch
    if torch.compiler.is_compiling():  # traced: keep the compiled graphs as they are
        return None
    print("NOISE-PRINT a model under test printed this")
    warnings.warn("NOISE-WARN torch.foo is deprecated", FutureWarning)
    os.write(2, b"NOISE-NATIVE oneMKL ERROR: Parameter 4 was incorrect on entry\\n")
    return None

class _AfterTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "torch":  # (find_spec is also asked by whoever only checks that torch is there)
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        inner = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return inner.create_module(spec)

            def exec_module(self, module):
                inner.exec_module(module)
                if finder in sys.meta_path:
                    sys.meta_path.remove(finder)
                module.nn.modules.module.register_module_forward_pre_hook(_noise)

        spec.loader = Loader()
        return spec

finder = _AfterTorch()
sys.meta_path.insert(0, finder)
'''
NOISE = ("NOISE-PRINT", "NOISE-WARN", "NOISE-NATIVE")


def noisy_fuzz(tmp_path: Path, *extra: str, tty: bool = False) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a small torch.eager vs aot_eager campaign of noisy
    models; with ``tty``, stdout and stderr are one pseudo-terminal (both in the first)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NOISY_SITECUSTOMIZE)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(site), PYTHONWARNINGS="always", TERM="xterm")
    cmd = [sys.executable, "-m", "fuzzer", "fuzz", "--backends", "torch.eager,torch.compile:aot_eager", "--time", "5m",
           "--max-cases", "6", "--seed", "5", "--max-nodes", "4", "--ops", "spec", "--reduce-time", "0",
           "--out", str(tmp_path / "out"), *extra]
    if not tty:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        return done.returncode, done.stdout, done.stderr
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:  # drain the terminal, or the campaign blocks on a full one
        if select.select([master], [], [], 1.0)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed it
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=600), b"".join(chunks).decode(errors="replace"), ""


def assert_noise_kept_in_the_log(tmp_path: Path) -> None:
    """The parent's log has its models' prints (warnings in eager runs are silenced,
    rules.execute.run_eager); the reference worker's log has all three."""
    logs = tmp_path / "out" / "logs"
    assert "NOISE-PRINT" in (logs / "campaign.log").read_text()
    worker = "".join(p.read_text(errors="replace") for p in logs.glob("worker-*.log"))
    for noise in NOISE:
        assert noise in worker


def test_the_live_screen_shows_the_campaign_and_none_of_what_its_models_print(tmp_path):
    code, screen, _ = noisy_fuzz(tmp_path, tty=True)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert code == 0, text[-3000:]
    for noise in NOISE:
        assert noise not in text
    for row in ("dlfuzz fuzz torch.eager vs torch.compile:aot_eager", "elapsed", "/min",
                "valid", "calls", "bugs", "last bug", "workers", "1 of 1 alive"):
        assert row in text, row
    assert "\rcases " not in screen  # the live panel, not the line per case
    assert re.search(r"\n6 cases \(6 valid, 100%\) in \d+ s", text), text[-2000:]  # the final line
    assert_noise_kept_in_the_log(tmp_path)


def test_quiet_prints_no_line_per_case_and_none_of_what_the_models_print(tmp_path):
    code, out, err = noisy_fuzz(tmp_path, "--quiet")
    assert code == 0, err[-3000:]
    assert err == ""  # under a minute: no progress line at all
    [line] = out.splitlines()  # the final line
    assert line.startswith("6 cases (6 valid, 100%)"), out
    assert_noise_kept_in_the_log(tmp_path)
