"""The benchmark machinery (not kernel speed): rows, ratios, skipped providers, output."""
import json
import os
import subprocess
import sys

import torch

from benchmarks import common


def test_rows_report_ratios_and_keep_skipped_providers(tmp_path):
    a = torch.randn(64, 64)
    case = common.Case("toy", "forward", "M=64", torch.float32,
                       {"fusedact": lambda: a + 1, "eager": lambda: (a * 1) + 1,
                        "liger": "not importable (ImportError)"},
                       bytes=2 * a.numel() * 4, extra={"eager": {"saved_bytes": 123}})
    rows = common.measure(case, {"copy_GBps": 10.0}, on_gpu=False)
    by_provider = {r["provider"]: r for r in rows}
    assert by_provider["liger"]["status"] == "skipped: not importable (ImportError)"
    assert by_provider["eager"]["speedup_vs_eager"] == 1.0
    assert by_provider["fusedact"]["GBps"] > 0
    assert by_provider["fusedact"]["fraction_of_ceiling"] == by_provider["fusedact"]["GBps"] / 10.0
    assert by_provider["eager"]["saved_bytes"] == 123
    env = common.environment()
    path = common.write_results(rows, env, {"copy_GBps": 10.0}, tmp_path, "test")
    data = json.loads(path.read_text())
    assert [r["provider"] for r in data["rows"]] == ["fusedact", "eager", "liger"]
    assert all(r["torch"] == torch.__version__ for r in data["rows"])
    assert path.with_suffix(".csv").read_text().count("\n") == 4
    assert "| toy | forward | M=64 | fp32 | liger |" in path.with_suffix(".md").read_text()


def test_a_failing_provider_is_reported_not_dropped():
    def broken():
        raise RuntimeError("boom")

    case = common.Case("toy", "forward", "x", torch.float32, {"fusedact": broken})
    (row,) = common.measure(case, {"copy_GBps": 1.0}, on_gpu=False)
    assert row["status"] == "error: RuntimeError: boom"


def test_refuses_to_time_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    out = subprocess.run([sys.executable, "-m", "benchmarks", "--op", "softmax"], env=env,
                         cwd=common.ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "interpreter timings" in out.stderr
