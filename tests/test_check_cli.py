"""python -m fusedact info / check: the table, the exit status, a crash reported as a FAIL."""
import torch

from fusedact import check_cli, cli


def test_check_passes_and_exits_zero(capsys):
    assert cli.main(["check", "--op", "linear_act[gelu]", "--op", "relu", "--dtype", "float32",
                     "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("linear_act[")]
    # "relu" also selects leaky_relu: gelu, relu, leaky_relu x 2 dtypes
    assert len(rows) == 6 and all(line.endswith("PASS") for line in rows)
    assert "6/6 passed" in out and "forward + backward vs float64" in out


def test_check_fails_with_exit_one_on_a_bad_error(monkeypatch, capsys):
    monkeypatch.setitem(check_cli.TOLERANCE, torch.float32, -1.0)  # below any error
    assert check_cli.main(["--op", "sigmoid", "--dtype", "float32"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "0/1 passed" in out


def test_check_reports_a_crash_as_a_failure(monkeypatch, capsys):
    def broken(name, dtype, device):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(check_cli, "_check_linear_act", broken)
    assert check_cli.main(["--op", "sigmoid", "--dtype", "float16"]) == 1
    assert "FAIL  RuntimeError: kernel exploded" in capsys.readouterr().out


def test_every_op_in_the_build_is_checked():
    import fusedact

    labels = [label for label, _ in check_cli.checks()]
    assert labels[:len(fusedact.ACTIVATIONS)] == [f"linear_act[{a}]" for a in fusedact.ACTIVATIONS]
    for name in ("softmax", "log_softmax", "kd_loss"):
        assert (name in labels) == hasattr(fusedact, name)


def test_info_names_paths_ops_and_cache(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FUSEDACT_CACHE_DIR", str(tmp_path))
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    # conftest turns the interpreter on when there is no GPU
    expected = "interpret" if not torch.cuda.is_available() else "triton"
    assert f"ops on {'cpu' if expected == 'interpret' else 'cuda'} tensors run on: {expected}" in out
    assert "linear_act_fwd" in out and f"autotune cache: {tmp_path}" in out
