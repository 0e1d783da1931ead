"""Benchmarks of exported models, as a package: `timing` at the bottom; contenders, memory, torch's
modules, parity, plots and the serving load generator above it; `peak` (the CPU's MAC rate) and
`macs` (a graph's work) beside `models`, which reports against them; `real_size` (torch side) makes
torchvision-sized exports with peers to measure. Nothing is imported here, so that
importing one module (export imports `timing`) loads no other."""
