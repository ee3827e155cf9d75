"""Backends: small hooks under the core's flow (local subprocesses, in-process debug, Slurm)."""
