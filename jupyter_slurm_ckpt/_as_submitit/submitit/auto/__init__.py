"""``submitit.auto``: see ``auto``."""
