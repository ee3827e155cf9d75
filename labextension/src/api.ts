/**
 * Calls to the server extension (`{base_url}/jupyter-slurm-ckpt/...`), authenticated by
 * JupyterLab's ServerConnection (token / XSRF handled there).
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  ICleanReport,
  ICleanRequest,
  IJobEvent,
  IJobPage,
  IJobQuery,
  IJobRow,
  jobsQuery
} from './model';

const NAMESPACE = 'jupyter-slurm-ckpt';

/** A log tail as `GET jobs/<id>/log` returns it. */
export interface ILogTail {
  id: string;
  task: number;
  stream: 'out' | 'err';
  path: string;
  /** The tail as a terminal shows it (`\r` redraws applied), colours stripped. */
  text: string | null;
  /** The same as HTML: text escaped by the server, ANSI colours as inline styles. */
  html: string | null;
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, NAMESPACE, path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const body = await response.text();
  let data: any = null;
  if (body.length > 0) {
    try {
      data = JSON.parse(body);
    } catch {
      data = body;
    }
  }
  if (!response.ok) {
    const message = (data && data.message) || response.statusText;
    throw new ServerConnection.ResponseError(response, message);
  }
  return data as T;
}

function jobPath(row: Pick<IJobRow, 'id'>, action: string): string {
  return `jobs/${encodeURIComponent(row.id)}/${action}`;
}

/** A page of the jobs below the configured folders (empty: below the server root), newest
 * first, filtered. */
export function listJobs(folders: readonly string[], query: IJobQuery): Promise<IJobPage> {
  return request<IJobPage>(`jobs${jobsQuery(folders, query)}`);
}

/** Remove (or, with ``dryRun``, count) the files of jobs that ended; never of a live job. */
export function cleanJobs(
  folders: readonly string[],
  clean: ICleanRequest,
  dryRun: boolean
): Promise<ICleanReport> {
  return request<ICleanReport>('jobs/clean', {
    method: 'POST',
    body: JSON.stringify({
      folders: folders.map(folder => folder.trim()).filter(folder => folder),
      states: clean.states,
      older_than_s: clean.olderThanDays * 86400,
      dry_run: dryRun
    })
  });
}

/** The events of one job. */
export function jobEvents(row: Pick<IJobRow, 'id' | 'folder'>): Promise<IJobEvent[]> {
  const query = new URLSearchParams({ folder: row.folder });
  return request<IJobEvent[]>(`${jobPath(row, 'events')}?${query}`);
}

/** The last ``lines`` lines of a job's stdout or stderr. */
export function jobLog(
  row: Pick<IJobRow, 'id' | 'folder'>,
  stream: 'out' | 'err',
  lines: number
): Promise<ILogTail> {
  const query = new URLSearchParams({ folder: row.folder, stream, lines: String(lines) });
  return request<ILogTail>(`${jobPath(row, 'log')}?${query}`);
}

/** Simulate a preemption (``timeout`` false) or a time limit of a running job. */
export function interruptJob(row: Pick<IJobRow, 'id' | 'folder'>, timeout: boolean): Promise<unknown> {
  return request(jobPath(row, 'interrupt'), {
    method: 'POST',
    body: JSON.stringify({ folder: row.folder, timeout })
  });
}

/** Resubmit an ended job from its last checkpoint, as a new job. */
export function resubmitJob(row: Pick<IJobRow, 'id' | 'folder'>): Promise<unknown> {
  return request(jobPath(row, 'resubmit'), {
    method: 'POST',
    body: JSON.stringify({ folder: row.folder })
  });
}

/** Cancel a job. */
export function cancelJob(row: Pick<IJobRow, 'id' | 'folder'>): Promise<unknown> {
  return request(jobPath(row, 'cancel'), {
    method: 'POST',
    body: JSON.stringify({ folder: row.folder })
  });
}
