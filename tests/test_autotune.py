"""The tuner on the CPU: an injected timer stands in for the GPU.

Each test builds a Tuner over a small fake config space whose "kernel" records the configs it
launches and whose timer returns a fixed time per config, so which config must win, and
whether anything was timed, are known exactly. The real kernels are checked to still run
through the interpreter with their one config and to leave the disk alone.
"""
import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
import torch

from fusedact import cli
from fusedact.kernels import autotune
from fusedact.kernels.autotune import Config, Tuner, bucket

DEVICE = "Fake GPU 80GB"
CONFIGS = [Config.make(num_warps=w, num_stages=s, BLOCK=b)
           for b in (16, 32, 64) for w, s in ((4, 2), (8, 3))]
#: Milliseconds per config: CONFIGS[3] (BLOCK=32, 8 warps) is the fastest, by a margin.
TIMES = {c: 1.0 + i for i, c in enumerate(CONFIGS)}
TIMES[CONFIGS[3]] = 0.5
FASTEST = CONFIGS[3]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeKernel:
    """``run(config)`` records launches; ``bench(fn)`` runs fn and returns its config's time."""

    def __init__(self, times=TIMES, fail=(), sleep_s=0.0):
        self.times, self.fail, self.sleep_s = times, set(fail), sleep_s
        self.launched, self.timed = [], []

    def run(self, config):
        if config in self.fail:
            raise RuntimeError("out of resources: shared memory")  # as a compile failure says
        self.launched.append(config)

    def bench(self, fn):
        fn()
        config = self.launched[-1]
        self.timed.append(config)
        time.sleep(self.sleep_s)
        return self.times[config]


def smallest(configs, problem):
    """The fake kernel's documented rule: the smallest block, fewest warps."""
    return min(configs, key=lambda c: (c.meta()["BLOCK"], c.num_warps))


def make_tuner(fake, name="fake_kernel", kernel="src-v1", **kwargs):
    return Tuner(name, CONFIGS, CONFIGS[0], lambda c, p: True, smallest, kernel=kernel,
                 bench=fake.bench, **kwargs)


def problem(M=100):
    return {"P": M, "device_name": DEVICE}


def key(M=100, dtype="torch.float16"):
    return (dtype, bucket(M), 64)


def cache_file(folder):
    return os.path.join(str(folder), autotune.device_file_name(DEVICE))


@pytest.fixture
def tuning(tmp_path, monkeypatch):
    """Tune mode (as on a GPU) with the cache and the shipped tables in tmp folders."""
    monkeypatch.setattr(autotune, "INTERPRETED", False)
    monkeypatch.setattr(autotune, "SHIPPED_DIR", str(tmp_path / "shipped"))
    monkeypatch.setattr(autotune, "_warned", set())
    monkeypatch.setenv("FUSEDACT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FUSEDACT_AUTOTUNE", raising=False)
    monkeypatch.delenv("FUSEDACT_TUNE_BUDGET_S", raising=False)
    return tmp_path / "cache"


def run_python(code, env_extra, timeout=120):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------- choosing

def test_best_config_is_the_one_the_timer_favours(tuning):
    fake = FakeKernel()
    assert make_tuner(fake).choose(key(), problem(), fake.run) == FASTEST
    assert sorted(map(str, fake.timed)) == sorted(map(str, CONFIGS)), "each config timed once"
    assert fake.timed[0] == smallest(CONFIGS, {}), "the rule's pick is timed first"
    record = autotune.TUNERS["fake_kernel"].history[-1]
    assert (record.best, record.best_ms) == (FASTEST, 0.5)
    assert record.heuristic_ms == TIMES[smallest(CONFIGS, {})]  # reported: rule vs tuned


def test_second_call_reuses_and_a_new_bucket_tunes(tuning):
    fake = FakeKernel()
    tuner = make_tuner(fake)
    tuner.choose(key(100), problem(100), fake.run)
    assert len(fake.timed) == len(CONFIGS)
    # 120 shares 100's bucket (128): nothing is timed again.
    assert tuner.choose(key(120), problem(120), fake.run) == FASTEST
    assert len(fake.timed) == len(CONFIGS)
    # 200 falls in bucket 256: a new key, timed afresh.
    tuner.choose(key(200), problem(200), fake.run)
    assert len(fake.timed) == 2 * len(CONFIGS)
    entries = json.load(open(cache_file(tuning)))["entries"]
    assert sorted(e["key"][1] for e in entries.values()) == [128, 256]


def test_a_new_process_tunes_nothing(tuning):
    fake = FakeKernel()
    make_tuner(fake).choose(key(), problem(), fake.run)
    code = f"""
        from fusedact.kernels import autotune
        from fusedact.kernels.autotune import Config, Tuner
        autotune.INTERPRETED = False
        configs = [Config.make(num_warps=w, num_stages=s, BLOCK=b)
                   for b in (16, 32, 64) for w, s in ((4, 2), (8, 3))]
        timed = []
        def bench(fn):
            timed.append(1)
            return 1.0
        tuner = Tuner("fake_kernel", configs, configs[0], lambda c, p: True,
                      lambda cs, p: cs[0], kernel="src-v1", bench=bench)
        best = tuner.choose({key()!r}, {problem()!r}, lambda config: None)
        print(len(timed), best.to_json())
    """
    result = run_python(code, {"FUSEDACT_CACHE_DIR": str(tuning)})
    assert result.returncode == 0, result.stderr
    count, config = result.stdout.strip().split(" ", 1)
    assert count == "0", "the second process benchmarked"
    assert Config.from_json(json.loads(config.replace("'", '"'))) == FASTEST


def test_new_source_or_triton_version_tunes_again(tuning, monkeypatch):
    fake = FakeKernel()
    make_tuner(fake, kernel="src-v1").choose(key(), problem(), fake.run)
    make_tuner(fake, kernel="src-v2").choose(key(), problem(), fake.run)
    assert len(fake.timed) == 2 * len(CONFIGS), "an edited kernel must not reuse old timings"
    monkeypatch.setattr(autotune, "triton_version", lambda: "99.0")
    make_tuner(fake, kernel="src-v1").choose(key(), problem(), fake.run)
    assert len(fake.timed) == 3 * len(CONFIGS)


def test_source_hash_follows_the_source():
    def kernel_a(x):
        return x + 1

    def kernel_b(x):
        return x + 2

    assert autotune.source_hash(kernel_a) != autotune.source_hash(kernel_b)
    assert autotune.source_hash(kernel_a) == autotune.source_hash(kernel_a)
    from fusedact.kernels import linear_act  # interpreted or jit: both hash
    assert len(autotune.source_hash(linear_act._linear_act_fwd_kernel)) == 16


# -------------------------------------------------------------------------- pruning

def test_pruning_drops_configs_over_shared_memory(tuning):
    fake = FakeKernel()
    tuner = make_tuner(fake, shared_memory=lambda c, p: c.meta()["BLOCK"] * 1024)
    limited = dict(problem(), max_shared_memory=40 * 1024)  # BLOCK=64 needs 64 KiB
    kept = tuner.candidates(limited)
    assert kept and all(c.meta()["BLOCK"] <= 32 for c in kept)
    tuner.choose(key(), limited, fake.run)
    assert not any(c.meta()["BLOCK"] == 64 for c in fake.timed)


def test_linear_act_prunes_by_shared_memory_and_size():
    from fusedact.kernels import linear_act

    big = {"P": 4096, "Q": 4096, "R": 4096, "itemsize": 2}
    sizes = [linear_act.shared_memory_bytes(c, 2) for c in linear_act.MATMUL_CONFIGS]
    limit = sorted(sizes)[len(sizes) // 2]
    kept = linear_act.FORWARD_TUNER.candidates(dict(big, max_shared_memory=limit))
    assert kept and all(linear_act.shared_memory_bytes(c, 2) <= limit for c in kept)
    assert len(kept) < len(linear_act.MATMUL_CONFIGS)
    tiny = linear_act.FORWARD_TUNER.candidates(
        {"P": 8, "Q": 8, "R": 8, "itemsize": 2, "max_shared_memory": 1 << 30})
    assert all(c.meta()["BLOCK_N"] <= 128 for c in tiny), "blocks far past the problem kept"


# ---------------------------------------------------------------------------- modes

def test_heuristic_mode_never_benchmarks(tuning, monkeypatch):
    monkeypatch.setenv("FUSEDACT_AUTOTUNE", "heuristic")
    fake = FakeKernel()
    assert make_tuner(fake).choose(key(), problem(), fake.run) == smallest(CONFIGS, {})
    assert fake.timed == [] and fake.launched == []
    assert not os.path.exists(cache_file(tuning)), "a rule's pick is not persisted"


def test_heuristic_mode_uses_a_tuned_entry(tuning, monkeypatch):
    fake = FakeKernel()
    make_tuner(fake).choose(key(), problem(), fake.run)
    monkeypatch.setenv("FUSEDACT_AUTOTUNE", "0")
    fresh = FakeKernel()
    assert make_tuner(fresh).choose(key(), problem(), fresh.run) == FASTEST
    assert fresh.timed == []


def test_interpreter_runs_exactly_one_config(tuning, monkeypatch):
    monkeypatch.setattr(autotune, "INTERPRETED", True)
    monkeypatch.setenv("FUSEDACT_AUTOTUNE", "tune")  # the interpreter wins over the variable
    fake = FakeKernel()
    assert make_tuner(fake).choose(key(), problem(), fake.run) == CONFIGS[0]
    assert fake.timed == [] and not os.path.exists(str(tuning))


def test_interpret_mode_by_variable_runs_one_config(tuning, monkeypatch):
    monkeypatch.setenv("FUSEDACT_AUTOTUNE", "interpret")
    fake = FakeKernel()
    assert make_tuner(fake).choose(key(), problem(), fake.run) == CONFIGS[0]
    assert fake.timed == []


def test_unknown_mode_is_a_clear_error(tuning, monkeypatch):
    monkeypatch.setenv("FUSEDACT_AUTOTUNE", "fastest")
    with pytest.raises(ValueError, match="FUSEDACT_AUTOTUNE"):
        autotune.autotune_mode()


def test_time_budget_bounds_tuning_and_is_reported(tuning, monkeypatch):
    monkeypatch.setenv("FUSEDACT_TUNE_BUDGET_S", "0.05")
    fake = FakeKernel(sleep_s=0.03)
    tuner = make_tuner(fake)
    with pytest.warns(RuntimeWarning, match="budget"):
        best = tuner.choose(key(), problem(), fake.run)
    assert 1 <= len(fake.timed) < len(CONFIGS)
    record = tuner.history[-1]
    assert record.budget_hit and record.timed == len(fake.timed) and record.seconds >= 0.05
    assert best == min(fake.timed, key=TIMES.get)
    entry = next(iter(json.load(open(cache_file(tuning)))["entries"].values()))
    assert entry["budget_hit"] is True


def test_a_config_that_fails_is_skipped(tuning):
    fake = FakeKernel(fail={FASTEST})
    with pytest.warns(RuntimeWarning, match="failed"):
        best = make_tuner(fake).choose(key(), problem(), fake.run)
    assert best == min((c for c in CONFIGS if c != FASTEST), key=TIMES.get)
    everything = FakeKernel(fail=set(CONFIGS))
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="none of"):
        make_tuner(everything, name="other").choose(key(), problem(), everything.run)


# ---------------------------------------------------------------- shipped tables

def test_shipped_table_is_used_when_no_local_entry(tuning):
    shipped_entry = {"kernel": "fake_kernel", "key": list(key()), "triton": "0.0", "src": "old",
                     "config": CONFIGS[5].to_json(), "ms": 1.0}
    assert autotune.write_entries(DEVICE, {"any": shipped_entry}, folder=autotune.SHIPPED_DIR)
    fake = FakeKernel()
    assert make_tuner(fake).choose(key(), problem(), fake.run) == CONFIGS[5]
    assert fake.timed == []
    with autotune.retuning():  # `fusedact tune --force` times it anyway
        assert make_tuner(fake).choose(key(), problem(), fake.run) == FASTEST
    fresh = FakeKernel()  # and then the local entry wins over the shipped one
    assert make_tuner(fresh).choose(key(), problem(), fresh.run) == FASTEST


# ----------------------------------------------------------- cache file robustness

def test_corrupt_cache_file_is_survived(tuning):
    os.makedirs(tuning)
    with open(cache_file(tuning), "w") as handle:
        handle.write('{"format": "fusedact-autotune", "entries": {tr')
    fake = FakeKernel()
    with pytest.warns(RuntimeWarning, match="ignoring the cache file"):
        assert make_tuner(fake).choose(key(), problem(), fake.run) == FASTEST
    data = json.load(open(cache_file(tuning)))  # rewritten whole
    assert len(data["entries"]) == 1


def test_unwritable_cache_is_survived(tuning, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FUSEDACT_CACHE_DIR", str(blocker / "cache"))
    fake = FakeKernel()
    with pytest.warns(RuntimeWarning, match="cannot write the cache"):
        assert make_tuner(fake).choose(key(), problem(), fake.run) == FASTEST


class _Exploit:
    def __reduce__(self):
        return (os.mkdir, (os.environ["FUSEDACT_TEST_MARKER"],))


def test_reading_refuses_pickle_and_paths_outside_the_folder(tuning, tmp_path, monkeypatch):
    os.makedirs(tuning)
    marker = str(tmp_path / "pickle_ran")
    monkeypatch.setenv("FUSEDACT_TEST_MARKER", marker)
    with open(cache_file(tuning), "wb") as handle:
        pickle.dump({"format": "fusedact-autotune", "exploit": _Exploit()}, handle)
    with pytest.warns(RuntimeWarning, match="ignoring"):
        assert autotune.read_table(cache_file(tuning), str(tuning)) == {}
    assert not os.path.exists(marker), "a pickle in the cache was executed"

    outside = tmp_path / "elsewhere.json"
    autotune.write_entries(DEVICE, {"x": {"kernel": "fake_kernel", "config": FASTEST.to_json()}},
                           folder=str(tmp_path))
    os.replace(cache_file(tmp_path), outside)
    with pytest.warns(RuntimeWarning, match="outside"):
        assert autotune.read_table(str(outside), str(tuning)) == {}
    os.unlink(cache_file(tuning))
    os.symlink(outside, cache_file(tuning))  # a link out of the folder is refused too
    with pytest.warns(RuntimeWarning, match="outside"):
        assert autotune.read_table(cache_file(tuning), str(tuning)) == {}
    with pytest.warns(RuntimeWarning, match="cannot write"):
        assert not autotune.write_entries(DEVICE, {}, folder=str(tuning))
    assert autotune.device_file_name("../../etc/passwd") == "etc_passwd.json"
    with pytest.raises(ValueError):
        Config.from_json({"kwargs": {"BLOCK": "__import__('os')"}, "num_warps": 4,
                          "num_stages": 2})


def test_two_processes_writing_at_once_leave_a_valid_file(tuning, tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    code = """
        import os, sys, time
        from fusedact.kernels import autotune
        writer, barrier = sys.argv[1], sys.argv[2]
        open(os.path.join(barrier, writer), "w").close()
        while len(os.listdir(barrier)) < 2:  # start together, so the writes overlap
            time.sleep(0.001)
        for i in range(40):
            entry = {"kernel": "k", "key": [writer, i], "config": {"kwargs": {}, "num_warps": 4, "num_stages": 2}}
            assert autotune.write_entries("Fake GPU 80GB", {f"{writer}-{i}": entry})
    """
    env = dict(os.environ, FUSEDACT_CACHE_DIR=str(tuning))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), name, str(barrier)],
                              env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
             for name in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    entries = json.load(open(cache_file(tuning)))["entries"]
    assert len(entries) == 80, "a concurrent write lost entries"
    assert not [n for n in os.listdir(tuning) if n.startswith(".tmp-")], "temp files left"


# -------------------------------------------------------------------- distributed

def test_rank0_decides_for_a_gloo_group(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "ranks.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys
        import torch.distributed as dist
        import torch.multiprocessing as mp

        def worker(rank, out):
            from fusedact.kernels import autotune
            from fusedact.kernels.autotune import Config, Tuner
            autotune.INTERPRETED = False
            dist.init_process_group("gloo", init_method="tcp://127.0.0.1:{port}",
                                    rank=rank, world_size=2)
            configs = [Config.make(num_warps=4, num_stages=2, BLOCK=b) for b in (16, 32, 64)]
            favourite = configs[1] if rank == 0 else configs[2]  # the ranks' timers disagree
            launched, timed = [], []
            def bench(fn):
                fn()
                timed.append(1)
                return 0.1 if launched[-1] == favourite else 1.0
            tuner = Tuner("rank_kernel", configs, configs[0], lambda c, p: True,
                          lambda cs, p: cs[0], kernel="src", bench=bench)
            best = tuner.choose(("torch.float16", 128), {{"device_name": "Fake GPU"}},
                                launched.append)
            json.dump({{"config": best.to_json(), "timed": len(timed)}},
                      open(os.path.join(out, f"rank{{rank}}.json"), "w"))
            dist.destroy_process_group()

        if __name__ == "__main__":
            mp.spawn(worker, args=(sys.argv[1],), nprocs=2)
    """))
    env = dict(os.environ, FUSEDACT_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("FUSEDACT_AUTOTUNE", None)
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.load(open(tmp_path / f"rank{r}.json")) for r in (0, 1))
    assert rank0["timed"] == 3 and rank1["timed"] == 0, "only rank 0 may benchmark"
    assert rank0["config"] == rank1["config"] == {"kwargs": {"BLOCK": 32}, "num_warps": 4,
                                                    "num_stages": 2}


# ------------------------------------------------------------ the real kernels, the CLI

def test_real_kernel_runs_its_one_interpreter_config(tmp_path, monkeypatch):
    from fusedact.kernels import linear_act

    if not autotune.INTERPRETED:
        pytest.skip("the interpreter is off (a GPU is present): this checks the CPU path")
    monkeypatch.setenv("FUSEDACT_CACHE_DIR", str(tmp_path / "cache"))
    x = torch.randn(37, 19)
    weight = torch.randn(23, 19)
    y, _ = linear_act.linear_act_forward(x, weight, None, "relu", 0.0, False)
    expected = torch.relu(x.double() @ weight.double().T)
    # fp32 inputs, K = 19: fp32 accumulation error is ~K * 2^-24 relative, far below 1e-5.
    torch.testing.assert_close(y.double(), expected, atol=1e-5, rtol=1e-5)
    problem = {"P": 37, "Q": 23, "R": 19, "itemsize": 4, "max_shared_memory": 1 << 30}
    assert linear_act.FORWARD_TUNER.choose(("x",), problem, None) == linear_act.INTERPRETER_CONFIG
    assert not os.path.exists(tmp_path / "cache"), "the interpreter path touched the cache"


def test_cache_cli_show_path_clear(tuning, capsys):
    fake = FakeKernel()
    make_tuner(fake).choose(key(), problem(), fake.run)
    assert cli.main(["cache", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(tuning)
    assert cli.main(["cache"]) == 0
    shown = capsys.readouterr().out
    assert "fake_kernel" in shown and "BLOCK=32" in shown and "1 entries" in shown
    assert cli.main(["cache", "clear"]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert not os.path.exists(cache_file(tuning))


def test_tune_cli_without_a_gpu_says_so(capsys):
    if torch.cuda.is_available() and not autotune.INTERPRETED:
        pytest.skip("a GPU is present: the no-GPU message cannot show")
    assert cli.main(["tune", "--op", "linear_act", "--shape", "64,64,64", "--dtype", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "nothing was tuned" in err or "TRITON_INTERPRET" in err
