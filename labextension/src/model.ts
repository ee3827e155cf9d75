/**
 * What the sidebar shows, as pure functions of the server's job rows (unit-tested with jest).
 */

/** One job as `GET jupyter-slurm-ckpt/jobs` returns it. */
export interface IJobRow {
  id: string;
  folder: string;
  name: string | null;
  backend: string | null;
  state: string;
  requeues: number;
  preemptions: number;
  timeouts: number;
  runs: number;
  node: string | null;
  num_tasks: number | null;
  submitted_at: number | null;
  started_at: number | null;
  ended_at: number | null;
  elapsed_s: number | null;
  last_event: IJobEvent | null;
  not_requeued_reason: string | null;
  error: string | null;
}

/** One line of a job's `<id>_events.jsonl`. */
export interface IJobEvent {
  t: number;
  event: string;
  [key: string]: unknown;
}

/** The row actions, as named in the UI and the REST API. */
export type JobAction = 'preempt' | 'timeout' | 'cancel' | 'log';

/** States after which nothing more happens to a job (the core's FINAL_STATES). */
export const FINAL_STATES: ReadonlySet<string> = new Set([
  'COMPLETED',
  'DONE', // a debug job's COMPLETED
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'PREEMPTED',
  'OUT_OF_MEMORY'
]);

/** Whether the job may still change (its elapsed time keeps growing). */
export function isLive(state: string): boolean {
  return !FINAL_STATES.has(state) && state !== 'UNKNOWN';
}

/** A key that tells jobs apart across folders (local ids restart in each folder). */
export function jobKey(row: Pick<IJobRow, 'id' | 'folder'>): string {
  return `${row.folder}\n${row.id}`;
}

/** Newest first: by submission time, then by id (numbers compared as numbers). */
export function sortNewestFirst(rows: readonly IJobRow[]): IJobRow[] {
  const collator = new Intl.Collator(undefined, { numeric: true });
  return [...rows].sort((a, b) => {
    const byTime = (b.submitted_at ?? 0) - (a.submitted_at ?? 0);
    return byTime !== 0 ? byTime : collator.compare(b.id, a.id);
  });
}

/** `42s`, `3m 05s`, `2h 03m`, `1d 04h`; `—` before the job has started. */
export function formatElapsed(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '—';
  }
  const total = Math.max(0, Math.floor(seconds));
  const pad = (n: number) => String(n).padStart(2, '0');
  if (total < 60) {
    return `${total}s`;
  }
  if (total < 3600) {
    return `${Math.floor(total / 60)}m ${pad(total % 60)}s`;
  }
  if (total < 86400) {
    return `${Math.floor(total / 3600)}h ${pad(Math.floor((total % 3600) / 60))}m`;
  }
  return `${Math.floor(total / 86400)}d ${pad(Math.floor((total % 86400) / 3600))}h`;
}

/**
 * The elapsed time now: the server's value plus, for a live job, the time since the fetch
 * (the browser's clock is only used for differences, so clock skew does not matter).
 */
export function elapsedNow(row: IJobRow, fetchedAtMs: number, nowMs: number): number | null {
  if (row.elapsed_s === null || row.elapsed_s === undefined) {
    return null;
  }
  const extra = isLive(row.state) ? Math.max(0, nowMs - fetchedAtMs) / 1000 : 0;
  return row.elapsed_s + extra;
}

function text(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : '';
}

/** One short line for an event: `requeued (run 2)`, `checkpoint 0.41 s`, ... */
export function describeEvent(event: IJobEvent | null | undefined): string {
  if (!event) {
    return '';
  }
  switch (event.event) {
    case 'started': {
      const node = text(event.node);
      return `started run ${text(event.run) || '0'}${node ? ` on ${node}` : ''}`;
    }
    case 'signal':
      return `${text(event.reason) || 'checkpoint'} signal`;
    case 'checkpoint': {
      const seconds = Number(event.seconds ?? 0).toFixed(2);
      return event.requeue === false
        ? `checkpoint ${seconds} s (no requeue)`
        : `checkpoint ${seconds} s`;
    }
    case 'requeued':
      return `requeued (run ${text(event.run)})`;
    case 'not_requeued':
      return `not requeued: ${text(event.reason)}`;
    case 'failed':
      return `failed${event.reason ? `: ${text(event.reason)}` : ''}`;
    default:
      return event.event;
  }
}

/** Which actions a job in ``state`` offers (the server refuses the others anyway). */
export function availableActions(state: string): Record<JobAction, boolean> {
  const running = state === 'RUNNING';
  return {
    preempt: running,
    timeout: running,
    cancel: isLive(state),
    log: true
  };
}

/** Query string of `GET jobs` for the configured folders (empty: discovery). */
export function jobsQuery(folders: readonly string[]): string {
  const params = new URLSearchParams();
  for (const folder of folders) {
    if (folder.trim()) {
      params.append('folder', folder.trim());
    }
  }
  const query = params.toString();
  return query ? `?${query}` : '';
}
