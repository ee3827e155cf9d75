/**
 * The job list as DOM: one `li` per job, updated in place (keyed by folder and id) so that a
 * refresh never replaces a button under the user's pointer.
 */

import {
  IJobRow,
  JobAction,
  availableActions,
  describeEvent,
  elapsedText,
  isLive,
  jobKey,
  progressText
} from './model';

/** Called when the user clicks a row action. */
export type ActionHandler = (action: JobAction, row: IJobRow) => void;

const ACTIONS: { action: JobAction; label: string; title: string }[] = [
  {
    action: 'preempt',
    label: 'Simulate preemption',
    title: 'Simulate preemption: the job checkpoints and requeues'
  },
  {
    action: 'timeout',
    label: 'Simulate timeout',
    title: 'Simulate timeout: checkpoint and requeue, counted against max_num_timeout'
  },
  { action: 'cancel', label: 'Cancel', title: 'Cancel the job' },
  {
    action: 'resubmit',
    label: 'Resubmit',
    title: 'Resubmit: a new job that continues from the last checkpoint'
  },
  { action: 'log', label: 'Show log', title: 'Show the log tail' }
];

const FIELDS = [
  'name',
  'id',
  'backend',
  'state',
  'requeues',
  'elapsed',
  'last'
] as const;
type Field = (typeof FIELDS)[number];

/** Renders rows into a list element, reusing the elements of jobs already shown. */
export class JobListRenderer {
  constructor(
    readonly list: HTMLElement,
    private readonly onAction: ActionHandler
  ) {
    list.classList.add('jp-SlurmJobs-list');
  }

  /** Show ``rows`` (already sorted) as fetched at ``fetchedAtMs``. */
  render(rows: readonly IJobRow[], fetchedAtMs: number, nowMs = Date.now()): void {
    const wanted = new Set(rows.map(jobKey));
    for (const item of Array.from(this.list.children) as HTMLElement[]) {
      if (!wanted.has(item.dataset.key ?? '')) {
        item.remove();
      }
    }
    const current = new Map<string, HTMLElement>();
    for (const item of Array.from(this.list.children) as HTMLElement[]) {
      current.set(item.dataset.key ?? '', item);
    }
    let previous: Element | null = null;
    for (const row of rows) {
      const key = jobKey(row);
      const item = current.get(key) ?? this.create(key);
      this.update(item, row, fetchedAtMs, nowMs);
      const expected: Element | null = previous
        ? previous.nextElementSibling
        : this.list.firstElementChild;
      if (expected !== item) {
        this.list.insertBefore(item, expected);
      }
      previous = item;
    }
  }

  /** Refresh only the elapsed times (between fetches). */
  tick(rows: readonly IJobRow[], fetchedAtMs: number, nowMs = Date.now()): void {
    for (const row of rows) {
      const item = this.find(row);
      const cell = item?.querySelector('.jp-SlurmJobs-elapsed');
      if (cell) {
        cell.textContent = elapsedText(row, fetchedAtMs, nowMs);
      }
    }
  }

  /** The element of one job, if shown. */
  find(row: Pick<IJobRow, 'id' | 'folder'>): HTMLElement | undefined {
    const key = jobKey(row);
    return (Array.from(this.list.children) as HTMLElement[]).find(
      item => item.dataset.key === key
    );
  }

  private create(key: string): HTMLElement {
    const item = document.createElement('li');
    item.className = 'jp-SlurmJobs-row';
    item.dataset.key = key;
    const head = document.createElement('div');
    head.className = 'jp-SlurmJobs-head';
    const meta = document.createElement('div');
    meta.className = 'jp-SlurmJobs-meta';
    // The progress bar (hidden until the job reports progress or shows a tqdm bar).
    const progress = document.createElement('div');
    progress.className = 'jp-SlurmJobs-progress';
    const bar = document.createElement('div');
    bar.className = 'jp-SlurmJobs-bar';
    const fill = document.createElement('div');
    fill.className = 'jp-SlurmJobs-fill';
    bar.append(fill);
    const words = document.createElement('span');
    words.className = 'jp-SlurmJobs-progresstext';
    progress.append(bar, words);
    const last = document.createElement('div');
    last.className = 'jp-SlurmJobs-last';
    const cells = {} as Record<Field, HTMLElement>;
    for (const field of FIELDS) {
      const cell = document.createElement('span');
      cell.className = `jp-SlurmJobs-${field}`;
      cells[field] = cell;
    }
    head.append(cells.name, cells.state);
    meta.append(cells.id, cells.backend, cells.requeues, cells.elapsed);
    last.append(cells.last);
    const actions = document.createElement('div');
    actions.className = 'jp-SlurmJobs-actions';
    for (const spec of ACTIONS) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'jp-SlurmJobs-action jp-mod-styled';
      button.dataset.action = spec.action;
      button.textContent = spec.label;
      button.title = spec.title;
      button.addEventListener('click', () => {
        const row = (item as HTMLElement & { jobRow?: IJobRow }).jobRow;
        if (row) {
          this.onAction(spec.action, row);
        }
      });
      actions.append(button);
    }
    item.append(head, meta, progress, last, actions);
    return item;
  }

  private update(item: HTMLElement, row: IJobRow, fetchedAtMs: number, nowMs: number): void {
    (item as HTMLElement & { jobRow?: IJobRow }).jobRow = row;
    item.dataset.jobId = row.id;
    item.dataset.state = row.state;
    item.dataset.requeues = String(row.requeues);
    item.title = row.folder;
    const set = (field: Field, value: string, title?: string) => {
      const cell = item.querySelector(`.jp-SlurmJobs-${field}`) as HTMLElement;
      if (cell.textContent !== value) {
        cell.textContent = value;
      }
      if (title !== undefined) {
        cell.title = title;
      }
    };
    set('name', row.name ?? '(unreadable job)');
    set('state', row.state);
    set('id', row.id, 'job id');
    set('backend', row.backend ?? '?', 'backend');
    set(
      'requeues',
      `${row.requeues} requeue${row.requeues === 1 ? '' : 's'}`,
      `requeued ${row.requeues} times (${row.preemptions} preemptions, ${row.timeouts} timeouts)`
    );
    set('elapsed', elapsedText(row, fetchedAtMs, nowMs), 'elapsed: the whole job (the run)');
    this.showProgress(item, row);
    set(
      'last',
      row.error ?? describeEvent(row.last_event),
      row.not_requeued_reason ?? row.error ?? ''
    );
    const stateCell = item.querySelector('.jp-SlurmJobs-state') as HTMLElement;
    stateCell.dataset.state = row.state;
    item.classList.toggle('jp-mod-error', row.error !== null);
    const allowed = availableActions(row.state, row.resubmitted_as ?? null);
    for (const button of Array.from(
      item.querySelectorAll<HTMLButtonElement>('.jp-SlurmJobs-action')
    )) {
      button.disabled = !allowed[button.dataset.action as JobAction];
    }
  }

  private showProgress(item: HTMLElement, row: IJobRow): void {
    const block = item.querySelector('.jp-SlurmJobs-progress') as HTMLElement;
    const progress = row.progress ?? null;
    block.hidden = progress === null;
    if (progress === null) {
      return;
    }
    const bar = block.querySelector('.jp-SlurmJobs-bar') as HTMLElement;
    const fill = block.querySelector('.jp-SlurmJobs-fill') as HTMLElement;
    bar.hidden = progress.fraction === null;
    const width = `${((progress.fraction ?? 0) * 100).toFixed(1)}%`;
    if (fill.style.width !== width) {
      fill.style.width = width;
    }
    bar.dataset.fraction = String(progress.fraction ?? '');
    bar.title = progress.source === 'log' ? "from the job's tqdm bar" : 'from report_progress()';
    const words = block.querySelector('.jp-SlurmJobs-progresstext') as HTMLElement;
    const text = progressText(progress, isLive(row.state));
    if (words.textContent !== text) {
      words.textContent = text;
      words.title = text; // the whole line, where the sidebar is too narrow for it
    }
  }
}
