/**
 * The log tail of one job, opened in the main area by the row action "Show log".
 */

import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { jobLog } from './api';
import { IJobRow } from './model';

/** A `<pre>` with the tail of stdout or stderr, refreshed while visible. */
export class JobLogView extends Widget {
  constructor(
    readonly job: Pick<IJobRow, 'id' | 'folder' | 'name'>,
    private readonly lines: () => number,
    intervalMs: number
  ) {
    super();
    this.addClass('jp-SlurmJobs-log');
    this.id = `jp-slurm-jobs-log-${job.id}-${Private.hash(job.folder)}`;
    this.title.label = `Log ${job.name ?? 'job'} ${job.id}`;
    this.title.caption = job.folder;
    this.title.closable = true;

    const bar = document.createElement('div');
    bar.className = 'jp-SlurmJobs-logbar';
    for (const stream of ['out', 'err'] as const) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'jp-mod-styled jp-SlurmJobs-stream';
      button.dataset.stream = stream;
      button.textContent = stream === 'out' ? 'stdout' : 'stderr';
      button.addEventListener('click', () => {
        this._stream = stream;
        void this._poll.refresh();
      });
      bar.append(button);
    }
    this._status = document.createElement('span');
    this._status.className = 'jp-SlurmJobs-logstatus';
    bar.append(this._status);
    this._pre = document.createElement('pre');
    this.node.append(bar, this._pre);

    this._poll = new Poll({
      factory: () => this._load(),
      frequency: { interval: intervalMs, backoff: true, max: 60_000 },
      standby: () => !this.isVisible || document.hidden,
      name: 'jupyter-slurm-ckpt:log'
    });
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(): void {
    void this._poll.refresh();
  }

  private async _load(): Promise<void> {
    for (const button of Array.from(
      this.node.querySelectorAll<HTMLElement>('.jp-SlurmJobs-stream')
    )) {
      button.classList.toggle('jp-mod-active', button.dataset.stream === this._stream);
    }
    try {
      const tail = await jobLog(this.job, this._stream, this.lines());
      const atBottom =
        this._pre.scrollTop + this._pre.clientHeight >= this._pre.scrollHeight - 4;
      if (tail.html === null) {
        this._pre.textContent = '(no output yet)';
      } else {
        // Rendered by the server (jupyter_slurm_ckpt.views.terminal): every character of the log is
        // escaped there; the only markup is <span style="..."> for the ANSI colours.
        this._pre.innerHTML = tail.html;
      }
      this._status.textContent = tail.path;
      if (atBottom) {
        this._pre.scrollTop = this._pre.scrollHeight;
      }
    } catch (error) {
      this._status.textContent = `cannot read the log: ${(error as Error).message}`;
      throw error; // the poll backs off
    }
  }

  private _stream: 'out' | 'err' = 'out';
  private readonly _pre: HTMLPreElement;
  private readonly _status: HTMLSpanElement;
  private readonly _poll: Poll;
}

namespace Private {
  /** A short stable hash, to make a DOM id from a folder path. */
  export function hash(text: string): string {
    let value = 0;
    for (let i = 0; i < text.length; i++) {
      value = (value * 31 + text.charCodeAt(i)) | 0;
    }
    return (value >>> 0).toString(36);
  }
}
