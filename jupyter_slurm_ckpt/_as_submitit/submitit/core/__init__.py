"""``submitit.core``: the modules below map submitit's names to jupyter_slurm_ckpt's."""
