"""The embedded executor core: submitit's API and checkpoint protocol, without IPython."""
