"""A program written for submitit whose job payload names ``submitit`` modules.

``python submitit_payload.py CLUSTER FOLDER``: the job's function uses the module globals
``submitit`` and ``submitit.core.utils`` (a pickle of it names them, to be imported again in the
job) and returns what it found there, as JSON on stdout.
"""

import json
import sys

import submitit
import submitit.core.utils as utils


def probe() -> dict:
    return {
        "job_id": submitit.JobEnvironment().job_id,
        "delayed_submission": f"{utils.DelayedSubmission.__module__}.DelayedSubmission",
        "submitit": submitit.__file__,
    }


if __name__ == "__main__":
    executor = submitit.AutoExecutor(folder=sys.argv[2], cluster=sys.argv[1])
    job = executor.submit(probe)
    print(json.dumps({"result": job.result(), "payload": str(job.paths.submitted_pickle)}))
