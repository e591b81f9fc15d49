"""ameli-ray: attribute-aware multimodal entity linking of product reviews, on Ray."""

import os

# OpenMP threads that spin while they wait starve each other when several torch processes (Ray
# actors, Serve replicas, the driver) share a few cores (measured 10x slower on 2 cores). libgomp
# reads this once, when torch loads it, so it is set here, before any module of the package imports
# torch: every process that runs our models (the CLI, jobs, benchmarks, Ray workers, `serve run`)
# imports this package first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
