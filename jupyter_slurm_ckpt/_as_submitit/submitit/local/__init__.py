"""``submitit.local``: see ``local`` and ``debug``."""
