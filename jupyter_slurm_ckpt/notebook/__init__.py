"""The ``%%slurm`` magics: parse the options, capture the cell, pickle it once, submit, display.

``magic`` is the thin dispatch; the work is in functions testable without IPython: ``options``
(one table of options -> argparse and executor parameters; defaults in ``config``), ``capture``
(split the cell, evaluate the call), ``serialize`` (the preflight pickling), ``submit``.
"""
