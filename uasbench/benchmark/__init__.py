"""Running benchmarks: one run (``run``), and grids of runs with their executors and cost estimates."""
