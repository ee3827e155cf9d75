"""``submitit.slurm``: see ``slurm``."""
