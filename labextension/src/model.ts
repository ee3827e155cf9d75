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
  /** The first run's start. */
  started_at: number | null;
  /** The current (or last) run's start and, once it was requeued, its end. */
  run_started_at: number | null;
  run_ended_at: number | null;
  ended_at: number | null;
  /** Seconds since the first start (to the end, for a finished job), as of the fetch. */
  elapsed_s: number | null;
  /** Seconds of the current (or last) run, as of the fetch. */
  run_elapsed_s: number | null;
  last_event: IJobEvent | null;
  not_requeued_reason: string | null;
  progress: IJobProgress | null;
  /** The job that continues this one from its last checkpoint (`job.resubmit()`), if any. */
  resubmitted_as?: string | null;
  error: string | null;
}

/**
 * How far a job got (the server's `Progress.as_dict()`): from its `report_progress(step=...,
 * total=...)` events, or, when it reports nothing, from the last tqdm bar of its log.
 */
export interface IJobProgress {
  step: number;
  total: number | null;
  /** step / total in [0, 1], when the total is known. */
  fraction: number | null;
  /** The run (0 = the first) of the latest report. */
  run: number;
  /** Steps per second in the current run. */
  rate: number | null;
  /** Seconds left at the latest report. */
  eta_s: number | null;
  /** The step the current run resumed from (a requeued run). */
  resumed_from: number | null;
  desc: string;
  details: string;
  source: 'report' | 'log';
}

/** One line of a job's `<id>_events.jsonl`. */
export interface IJobEvent {
  t: number;
  event: string;
  [key: string]: unknown;
}

/** The row actions, as named in the UI and the REST API. */
export type JobAction = 'preempt' | 'timeout' | 'cancel' | 'resubmit' | 'log';

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

/** `0.4s`, `42s`, `3m 05s`, `2h 03m`, `1d 04h`; `—` before the job has started. */
export function formatElapsed(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '—';
  }
  if (seconds < 10) {
    // A short job's time to the tenth: "0.4s", not "0s".
    return `${(Math.floor(Math.max(0, seconds) * 10) / 10).toFixed(1)}s`;
  }
  const total = Math.floor(seconds);
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

/** The current run's time now (it stops when the run was requeued or the job ended). */
export function runElapsedNow(row: IJobRow, fetchedAtMs: number, nowMs: number): number | null {
  if (row.run_elapsed_s === null || row.run_elapsed_s === undefined) {
    return null;
  }
  const running = isLive(row.state) && row.run_ended_at === null;
  const extra = running ? Math.max(0, nowMs - fetchedAtMs) / 1000 : 0;
  return row.run_elapsed_s + extra;
}

/** The elapsed cell: the whole job's time, and the current run's once it was requeued. */
export function elapsedText(row: IJobRow, fetchedAtMs: number, nowMs: number): string {
  const text = formatElapsed(elapsedNow(row, fetchedAtMs, nowMs));
  const run = runElapsedNow(row, fetchedAtMs, nowMs);
  if (row.runs > 1 && run !== null) {
    return `${text} (run #${row.runs - 1}: ${formatElapsed(run)})`;
  }
  return text;
}

/** A step count: `1,200` for whole numbers, `3.25` otherwise. */
export function formatCount(value: number): string {
  return Number.isInteger(value)
    ? value.toLocaleString('en-US')
    : String(Number(value.toPrecision(4)));
}

/** `12.5/s`, or `4.2s each` when a step takes longer than a second. */
export function formatRate(rate: number): string {
  if (rate >= 1 || rate <= 0) {
    return `${Number(rate.toPrecision(3))}/s`;
  }
  return `${Number((1 / rate).toPrecision(3))}s each`;
}

/** `train 120/200 (60%) · 3.2/s · 25s left · resumed at 100 in run #1 · loss=0.3`. */
export function progressText(progress: IJobProgress, live: boolean): string {
  let count = formatCount(progress.step);
  if (progress.total !== null && progress.fraction !== null) {
    count += `/${formatCount(progress.total)} (${Math.round(progress.fraction * 100)}%)`;
  }
  const parts = [progress.desc ? `${progress.desc} ${count}` : count];
  if (progress.rate !== null) {
    parts.push(formatRate(progress.rate));
  }
  if (live && progress.eta_s !== null && (progress.fraction ?? 0) < 1) {
    parts.push(`${formatElapsed(progress.eta_s)} left`);
  }
  if (progress.resumed_from !== null) {
    parts.push(`resumed at ${formatCount(progress.resumed_from)} in run #${progress.run}`);
  }
  if (progress.details) {
    parts.push(progress.details);
  }
  return parts.join(' · ');
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
    case 'progress': {
      if (typeof event.step === 'number') {
        const total = typeof event.total === 'number' ? ` of ${formatCount(event.total)}` : '';
        return `progress: step ${formatCount(event.step)}${total}`;
      }
      const fields = Object.entries(event)
        .filter(([key]) => !['t', 'event', 'run'].includes(key))
        .map(([key, value]) => `${key}=${String(value)}`);
      return `progress: ${fields.join(', ')}`;
    }
    default:
      return event.event;
  }
}

/**
 * Which actions a job in ``state`` offers (the server refuses the others anyway): a job that
 * ended without its result, and was not resubmitted yet, can be resubmitted.
 */
export function availableActions(
  state: string,
  resubmittedAs: string | null = null
): Record<JobAction, boolean> {
  const running = state === 'RUNNING';
  const succeeded = state === 'COMPLETED' || state === 'DONE';
  return {
    preempt: running,
    timeout: running,
    cancel: isLive(state),
    resubmit: FINAL_STATES.has(state) && !succeeded && !resubmittedAs,
    log: true
  };
}

/** One page of `GET jobs`: the rows, newest first, and where they stand among the others. */
export interface IJobPage {
  jobs: IJobRow[];
  /** How many jobs pass the filter (the rows are `limit` of them from `offset`). */
  total: number;
  offset: number;
  limit: number;
  /** How many jobs the folders hold. */
  all: number;
  /** Jobs by state among those that pass the name and text filters; null until the server
   * has read every job (a first request on a large folder). */
  counts: Record<string, number> | null;
  /** The most frequent job names, with their number of jobs. */
  names: [string, number][] | null;
  /** The server stopped looking for job folders early (a huge tree). */
  partial: boolean;
}

/** Which jobs the sidebar asks for: a page, and a filter. */
export interface IJobQuery {
  offset: number;
  limit: number;
  /** Only jobs in this state ('' : any). */
  state: string;
  /** Only jobs with this name ('' : any). */
  name: string;
  /** Only the job with this id (or this array's elements), or jobs whose name, state or
   * folder contains this (case ignored). */
  text: string;
}

export const DEFAULT_QUERY: IJobQuery = { offset: 0, limit: 50, state: '', name: '', text: '' };

/** Query string of `GET jobs`: the configured folders (empty: discovery), the page, the filter. */
export function jobsQuery(folders: readonly string[], query: Partial<IJobQuery> = {}): string {
  const params = new URLSearchParams();
  for (const folder of folders) {
    if (folder.trim()) {
      params.append('folder', folder.trim());
    }
  }
  if (query.offset) {
    params.append('offset', String(query.offset));
  }
  if (query.limit !== undefined) {
    params.append('limit', String(query.limit));
  }
  for (const [key, value] of [
    ['state', query.state],
    ['name', query.name],
    ['q', query.text]
  ] as const) {
    if (value && value.trim()) {
      params.append(key, value.trim());
    }
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** `1–50 of 10,020 jobs`, `51–100 of 312 jobs (FAILED)`, `No job matches`. */
export function pageText(page: IJobPage, filtered: boolean): string {
  if (page.total === 0) {
    return page.all === 0 ? 'No jobs yet' : `No job matches (${formatCount(page.all)} in all)`;
  }
  const first = Math.min(page.offset + 1, page.total);
  const last = Math.min(page.offset + page.jobs.length, page.total);
  const noun = page.total === 1 ? 'job' : 'jobs';
  const of = filtered ? ` of ${formatCount(page.all)}` : '';
  return `${formatCount(first)}–${formatCount(last)} of ${formatCount(page.total)} ${noun}${of}`;
}

/** The offset of the page before (null on the first) and after (null on the last), for
 * pages of ``limit`` jobs from ``offset`` among ``total``. */
export function neighbourPages(
  offset: number,
  limit: number,
  total: number
): { newer: number | null; older: number | null } {
  const size = Math.max(1, limit);
  return {
    newer: offset > 0 ? Math.max(0, offset - size) : null,
    older: offset + size < total ? offset + size : null
  };
}

/** The state filter's choices: any state, then each state with its number of jobs; the chosen
 * one stays even when no job is in it any more. */
export function stateChoices(
  counts: Record<string, number> | null,
  chosen: string
): [string, string][] {
  const choices: [string, string][] = [['', 'All states']];
  const entries = Object.entries(counts ?? {}).sort((a, b) => b[1] - a[1]);
  for (const [state, count] of entries) {
    choices.push([state, `${state} (${formatCount(count)})`]);
  }
  if (chosen && !(counts && chosen in counts)) {
    choices.push([chosen, `${chosen} (0)`]);
  }
  return choices;
}

/** The name filter's choices: any name, then the most frequent names with their counts. */
export function nameChoices(names: [string, number][] | null, chosen: string): [string, string][] {
  const choices: [string, string][] = [['', 'All names']];
  for (const [name, count] of names ?? []) {
    choices.push([name, `${name} (${formatCount(count)})`]);
  }
  if (chosen && !(names ?? []).some(([name]) => name === chosen)) {
    choices.push([chosen, chosen]);
  }
  return choices;
}

/** What "Clean up" asks the server to remove: jobs that ended in `states`, `olderThanDays` ago. */
export interface ICleanRequest {
  states: string[];
  olderThanDays: number;
}

/** The server's answer to `POST jobs/clean`. */
export interface ICleanReport {
  removed: number;
  bytes: number;
  dry_run: boolean;
  kept: { id: string; folder: string; why: string }[];
}

/** The end states "Clean up" offers (a live job is never removed, whatever is chosen). */
export const CLEANABLE_STATES = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'PREEMPTED'];

/** `12.3 MB`. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The question before a clean-up, from its dry run. */
export function cleanQuestion(report: ICleanReport, request: ICleanRequest): string {
  const age =
    request.olderThanDays > 0
      ? ` that ended more than ${formatCount(request.olderThanDays)} day${request.olderThanDays === 1 ? '' : 's'} ago`
      : '';
  const states = request.states.length ? ` (${request.states.join(', ')})` : '';
  if (report.removed === 0) {
    return `No job${states}${age} to remove.`;
  }
  const jobs = `${formatCount(report.removed)} job${report.removed === 1 ? '' : 's'}`;
  const kept = report.kept.length
    ? ` ${formatCount(report.kept.length)} that match are kept: ${report.kept[0].why}.`
    : '';
  return (
    `Remove the files of ${jobs}${states}${age} (${formatBytes(report.bytes)})? ` +
    `Their results and logs are deleted. Jobs that still run are never removed.${kept}`
  );
}
