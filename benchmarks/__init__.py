"""fusedact's benchmark suite: ``python -m benchmarks`` (quick mode), ``--full`` for all."""
