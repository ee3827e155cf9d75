/**
 * The "Slurm jobs" sidebar panel: polls the job list (backing off on errors, paused while
 * hidden), renders it, and runs the row actions.
 */

import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { cancelJob, interruptJob, listJobs, resubmitJob } from './api';
import { IJobRow, JobAction, sortNewestFirst } from './model';
import { JobListRenderer } from './render';

/** The user's settings (schema/sidebar.json). */
export interface IPanelSettings {
  /** Seconds between refreshes while the panel is visible. */
  refreshInterval: number;
  /** Upper bound of the interval when the server keeps failing (backoff). */
  maxRefreshInterval: number;
  /** Folders to list; empty: every job folder under the server root. */
  jobFolders: string[];
  /** Lines shown by "Show log". */
  logLines: number;
}

export const DEFAULT_SETTINGS: IPanelSettings = {
  refreshInterval: 3,
  maxRefreshInterval: 60,
  jobFolders: [],
  logLines: 200
};

export class SlurmJobsPanel extends Widget {
  constructor(private readonly openLog: (row: IJobRow) => void) {
    super();
    this.id = 'jp-slurm-jobs';
    this.addClass('jp-SlurmJobs');
    this.title.caption = 'Slurm jobs';

    const header = document.createElement('div');
    header.className = 'jp-SlurmJobs-header';
    const title = document.createElement('h2');
    title.textContent = 'Slurm jobs';
    const refresh = document.createElement('button');
    refresh.type = 'button';
    refresh.className = 'jp-mod-styled jp-SlurmJobs-refresh';
    refresh.textContent = 'Refresh';
    refresh.title = 'Refresh the job list now';
    refresh.addEventListener('click', () => void this._poll.refresh());
    header.append(title, refresh);
    this._status = document.createElement('div');
    this._status.className = 'jp-SlurmJobs-status';
    const list = document.createElement('ul');
    this._renderer = new JobListRenderer(list, (action, row) => void this.act(action, row));
    this.node.append(header, this._status, list);

    this._poll = new Poll({
      factory: () => this._refresh(),
      frequency: Private.frequency(this._settings),
      standby: () => !this.isVisible || document.hidden,
      name: 'jupyter-slurm-ckpt:jobs'
    });
    // Elapsed times move every second between fetches, only while someone can see them.
    this._ticker = window.setInterval(() => {
      if (this.isVisible && !document.hidden) {
        this._renderer.tick(this._rows, this._fetchedAt);
      }
    }, 1000);
  }

  /** The settings in force. */
  get settings(): IPanelSettings {
    return this._settings;
  }

  set settings(value: IPanelSettings) {
    this._settings = { ...DEFAULT_SETTINGS, ...value };
    this._poll.frequency = Private.frequency(this._settings);
    void this._poll.refresh();
  }

  /** The rows shown, newest first. */
  get rows(): readonly IJobRow[] {
    return this._rows;
  }

  /** Fetch the list now. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  /** Run a row action (asks before cancelling); errors are shown in a dialog. */
  async act(action: JobAction, row: IJobRow): Promise<void> {
    if (action === 'log') {
      this.openLog(row);
      return;
    }
    try {
      if (action === 'cancel') {
        const answer = await showDialog({
          title: 'Cancel job',
          body: `Cancel job ${row.id} (${row.name ?? 'job'})?`,
          buttons: [Dialog.cancelButton({ label: 'Keep' }), Dialog.warnButton({ label: 'Cancel job' })]
        });
        if (!answer.button.accept) {
          return;
        }
        await cancelJob(row);
      } else if (action === 'resubmit') {
        await resubmitJob(row);
      } else {
        await interruptJob(row, action === 'timeout');
      }
    } catch (error) {
      void showErrorMessage(`Job ${row.id}: ${action} failed`, error as Error);
    }
    await this._poll.refresh();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this._ticker);
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this._poll.refresh();
  }

  private async _refresh(): Promise<void> {
    try {
      const rows = await listJobs(this._settings.jobFolders);
      this._rows = sortNewestFirst(rows);
      this._fetchedAt = Date.now();
      this._renderer.render(this._rows, this._fetchedAt);
      const count = this._rows.length;
      this._status.textContent =
        count === 0
          ? 'No jobs found. Jobs submitted with %%slurm or an executor under the server root show here.'
          : `${count} job${count === 1 ? '' : 's'} · updated ${new Date().toLocaleTimeString()}`;
      this._status.classList.remove('jp-mod-error');
    } catch (error) {
      this._status.textContent = `Cannot list jobs (retrying, slower): ${(error as Error).message}`;
      this._status.classList.add('jp-mod-error');
      throw error; // a rejected tick makes the poll back off
    }
  }

  private _settings: IPanelSettings = DEFAULT_SETTINGS;
  private _rows: IJobRow[] = [];
  private _fetchedAt = Date.now();
  private readonly _status: HTMLDivElement;
  private readonly _renderer: JobListRenderer;
  private readonly _poll: Poll;
  private readonly _ticker: number;
}

namespace Private {
  export function frequency(settings: IPanelSettings): {
    interval: number;
    backoff: boolean;
    max: number;
  } {
    const interval = Math.max(1, settings.refreshInterval) * 1000;
    return {
      interval,
      backoff: true,
      max: Math.max(interval, settings.maxRefreshInterval * 1000)
    };
  }
}
