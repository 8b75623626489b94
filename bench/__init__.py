"""bigaccel's benchmark suite: every op against the baselines a user would
otherwise pick, measured in the same run as the machine's limits.

    limits.py       memory bandwidth and GEMM peaks of this machine, measured now
    timing.py       how one call is timed (CPU threads, LLC rotation, CUDA events)
    case.py         a benchmark case, its roofline classification and speedups
    cases/<op>.py   one small file per op family; a new op joins by adding one
    e2e.py          decode tokens/s of a random-initialised Llama-style model
    runner.py       runs everything, prints the table, writes JSON and the plot
    report.py       results/*.json -> the README's benchmark summary and RESULTS.md (every table)
    test_*.py       the same cases under pytest-benchmark (`pytest bench/`)

Run it with `bigaccel bench` (from a clone: bench/ is not in the wheel).
"""
