import { IJobRow } from '../model';

/** A job row as the server sends it: a running local job, with ``overrides``. */
export function row(overrides: Partial<IJobRow> = {}): IJobRow {
  return {
    id: 'L1',
    folder: '/srv/jobs',
    name: 'train',
    backend: 'local',
    state: 'RUNNING',
    requeues: 0,
    preemptions: 0,
    timeouts: 0,
    runs: 1,
    node: 'n1',
    num_tasks: 1,
    submitted_at: 1000,
    started_at: 1001,
    run_started_at: 1001,
    run_ended_at: null,
    ended_at: null,
    elapsed_s: 65,
    run_elapsed_s: 65,
    last_event: { t: 1001, event: 'started', run: 0, node: 'n1' },
    not_requeued_reason: null,
    progress: null,
    error: null,
    ...overrides
  };
}
