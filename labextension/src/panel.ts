/**
 * The "Slurm jobs" sidebar panel: polls a page of the job list (backing off on errors, paused
 * while hidden), renders it with its filters and pager, runs the row actions and "Clean up".
 */

import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { cancelJob, cleanJobs, interruptJob, listJobs, resubmitJob } from './api';
import { cleanFormNode, readCleanForm } from './clean';
import { FilterBar, button } from './filters';
import {
  ICleanRequest,
  IJobPage,
  IJobRow,
  JobAction,
  cleanQuestion,
  formatBytes,
  formatCount
} from './model';
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
  /** Jobs shown at a time (the others are a page away). */
  pageSize: number;
}

export const DEFAULT_SETTINGS: IPanelSettings = {
  refreshInterval: 3,
  maxRefreshInterval: 60,
  jobFolders: [],
  logLines: 200,
  pageSize: 50
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
    const buttons = document.createElement('div');
    buttons.className = 'jp-SlurmJobs-buttons';
    const clean = button(
      'jp-SlurmJobs-clean',
      'Clean up…',
      'Remove the files of old jobs that ended (asks first)'
    );
    clean.addEventListener('click', () => void this.clean());
    const refresh = button('jp-SlurmJobs-refresh', 'Refresh', 'Refresh the job list now');
    refresh.addEventListener('click', () => void this._poll.refresh());
    buttons.append(clean, refresh);
    header.append(title, buttons);
    this._filters = new FilterBar(() => void this._poll.refresh());
    this._status = document.createElement('div');
    this._status.className = 'jp-SlurmJobs-status';
    const list = document.createElement('ul');
    this._renderer = new JobListRenderer(list, (action, row) => void this.act(action, row));
    this.node.append(header, this._filters.filters, this._status, this._filters.pager, list);

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
    this._filters.limit = Math.max(1, Math.round(this._settings.pageSize));
    this._poll.frequency = Private.frequency(this._settings);
    void this._poll.refresh();
  }

  /** The rows shown, newest first. */
  get rows(): readonly IJobRow[] {
    return this._rows;
  }

  /** The page shown (null before the first answer). */
  get page(): IJobPage | null {
    return this._page;
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

  /** "Clean up…": which jobs (a form), how many that is (a dry run), then, if confirmed,
   * remove them. */
  async clean(): Promise<void> {
    const form = await showDialog({
      title: 'Clean up old jobs',
      body: new Private.CleanForm(this._lastClean),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Next' })]
    });
    if (!form.button.accept || form.value === null) {
      return;
    }
    const request: ICleanRequest = form.value;
    this._lastClean = request;
    const folders = this._settings.jobFolders;
    try {
      const preview = await cleanJobs(folders, request, true);
      const question = cleanQuestion(preview, request);
      if (preview.removed === 0) {
        await showDialog({ title: 'Clean up old jobs', body: question, buttons: [Dialog.okButton()] });
        return;
      }
      const answer = await showDialog({
        title: 'Clean up old jobs',
        body: question,
        buttons: [
          Dialog.cancelButton({ label: 'Keep them' }),
          Dialog.warnButton({ label: `Remove ${formatCount(preview.removed)} jobs` })
        ]
      });
      if (!answer.button.accept) {
        return;
      }
      const done = await cleanJobs(folders, request, false);
      this._notice = `Removed ${formatCount(done.removed)} jobs (${formatBytes(done.bytes)}).`;
    } catch (error) {
      void showErrorMessage('Clean up failed', error as Error);
    }
    await this._poll.refresh();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._filters.dispose();
    window.clearInterval(this._ticker);
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this._poll.refresh();
  }

  private async _refresh(): Promise<void> {
    try {
      const query = this._filters.query;
      const page = await listJobs(this._settings.jobFolders, query);
      if (query !== this._filters.query) {
        return; // the user changed the filter meanwhile: its own answer comes next
      }
      this._page = page;
      this._rows = page.jobs;
      this._fetchedAt = Date.now();
      this._renderer.render(this._rows, this._fetchedAt);
      this._filters.show(page);
      this._status.textContent = [this._notice, Private.statusText(page)]
        .filter(part => part)
        .join(' ');
      this._status.classList.remove('jp-mod-error');
    } catch (error) {
      this._status.textContent = `Cannot list jobs (retrying, slower): ${(error as Error).message}`;
      this._status.classList.add('jp-mod-error');
      throw error; // a rejected tick makes the poll back off
    }
  }

  private _settings: IPanelSettings = DEFAULT_SETTINGS;
  private _page: IJobPage | null = null;
  private _notice = '';
  private _lastClean: ICleanRequest | undefined = undefined;
  private readonly _filters: FilterBar;
  private _rows: IJobRow[] = [];
  private _fetchedAt = Date.now();
  private readonly _status: HTMLDivElement;
  private readonly _renderer: JobListRenderer;
  private readonly _poll: Poll;
  private readonly _ticker: number;
}

namespace Private {
  /** The clean-up form as a dialog body; its value is the request. */
  export class CleanForm extends Widget {
    constructor(initial?: ICleanRequest) {
      super({ node: cleanFormNode(initial) });
    }

    getValue(): ICleanRequest {
      return readCleanForm(this.node);
    }
  }

  export function statusText(page: IJobPage): string {
    if (page.all === 0) {
      return 'No jobs found. Jobs submitted with %%slurm or an executor under the server root show here.';
    }
    const counting = page.counts === null ? ' · counting…' : '';
    const partial = page.partial ? ' · stopped looking for job folders early (a huge tree)' : '';
    const all = `${formatCount(page.all)} job${page.all === 1 ? '' : 's'}`;
    return `${all}${counting}${partial} · updated ${new Date().toLocaleTimeString()}`;
  }

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
