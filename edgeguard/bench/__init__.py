"""Benchmarks of exported models, as a package: `timing` at the bottom; contenders, memory, torch's
modules, parity, plots and the serving load generator above it. Nothing is imported here, so that
importing one module (export imports `timing`) loads no other."""
