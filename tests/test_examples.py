"""The examples run end to end (tiny settings, in a subprocess, on the plain-torch path).

The child gets no TRITON_INTERPRET, so its ops take the plain-torch CPU path (the kernels
themselves are tested elsewhere); this checks the examples' wiring and printed results.
"""
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

import fusedact

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _run(script, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_decision_boundary(tmp_path):
    out = _run("decision_boundary.py", "--steps", "3", "--points", "64", "--hidden", "8",
               "--resolution", "20", "--out", str(tmp_path / "panels.png"), cwd=tmp_path)
    assert "'torch' path" in out
    for name in fusedact.ACTIVATIONS:
        label = "no activation" if name == "identity" else name
        assert f"{label:<20} test accuracy" in out
    assert "collapses to one nn.Linear" in out
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib is not installed" in out
    else:
        png = tmp_path / "panels.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_distill(tmp_path):
    if importlib.util.find_spec("sklearn") is None:
        pytest.skip("scikit-learn is not installed (pip install -e '.[examples]'): it ships "
                    "the digits data set the example uses")
    if not hasattr(fusedact, "KDLoss"):
        pytest.skip("fusedact.KDLoss is not in this build (the softmax / KD issue adds it)")
    out = _run("distill.py", "--epochs", "1", "--teacher-epochs", "1", "--temperatures", "2",
               "4", cwd=tmp_path)
    assert "labels only" in out and "KD T=2" in out and "KD T=4" in out
    assert out.count("test accuracy") == 4  # teacher, baseline, two temperatures
