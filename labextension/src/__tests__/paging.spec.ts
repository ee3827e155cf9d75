import { cleanFormNode, readCleanForm } from '../clean';
import { FilterBar, TYPING_PAUSE_MS } from '../filters';
import {
  IJobPage,
  IJobQuery,
  cleanQuestion,
  formatBytes,
  nameChoices,
  neighbourPages,
  pageText,
  stateChoices
} from '../model';
import { row } from './rows';

function page(overrides: Partial<IJobPage> = {}): IJobPage {
  return {
    jobs: Array.from({ length: 50 }, (_, i) => row({ id: `L${i}` })),
    total: 10020,
    offset: 0,
    limit: 50,
    all: 10020,
    counts: { COMPLETED: 7514, FAILED: 1485, RUNNING: 20 },
    names: [
      ['train', 4000],
      ['sweep', 2000]
    ],
    partial: false,
    ...overrides
  };
}

describe('paging', () => {
  it('says where the page stands', () => {
    expect(pageText(page(), false)).toBe('1–50 of 10,020 jobs');
    expect(pageText(page({ offset: 10000, jobs: [row(), row()], total: 10002 }), false)).toBe(
      '10,001–10,002 of 10,002 jobs'
    );
    expect(pageText(page({ total: 312, jobs: [row()] }), true)).toBe('1–1 of 312 jobs of 10,020');
    expect(pageText(page({ total: 0, jobs: [] }), true)).toBe('No job matches (10,020 in all)');
    expect(pageText(page({ total: 0, all: 0, jobs: [] }), false)).toBe('No jobs yet');
  });

  it('finds the pages before and after, to the last job', () => {
    expect(neighbourPages(0, 50, 10020)).toEqual({ newer: null, older: 50 });
    expect(neighbourPages(9950, 50, 10000)).toEqual({ newer: 9900, older: null });
    expect(neighbourPages(30, 50, 10020)).toEqual({ newer: 0, older: 80 });
    expect(neighbourPages(0, 50, 50)).toEqual({ newer: null, older: null });
  });

  it('offers each state and name with its count, and keeps the chosen one', () => {
    expect(stateChoices(page().counts, '')).toEqual([
      ['', 'All states'],
      ['COMPLETED', 'COMPLETED (7,514)'],
      ['FAILED', 'FAILED (1,485)'],
      ['RUNNING', 'RUNNING (20)']
    ]);
    expect(stateChoices(null, 'TIMEOUT')).toEqual([
      ['', 'All states'],
      ['TIMEOUT', 'TIMEOUT (0)']
    ]);
    expect(nameChoices(page().names, 'eval').map(([value]) => value)).toEqual([
      '',
      'train',
      'sweep',
      'eval'
    ]);
  });
});

describe('FilterBar', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function setup() {
    const queries: IJobQuery[] = [];
    const bar = new FilterBar(query => queries.push(query));
    bar.limit = 50;
    bar.show(page());
    return { bar, queries };
  }

  it('turns pages and goes back to the first one when a filter changes', () => {
    const { bar, queries } = setup();
    const older = bar.pager.querySelector('.jp-SlurmJobs-older') as HTMLButtonElement;
    const newer = bar.pager.querySelector('.jp-SlurmJobs-newer') as HTMLButtonElement;
    expect(newer.disabled).toBe(true);
    older.click();
    expect(queries.pop()?.offset).toBe(50);
    bar.show(page({ offset: 50 }));
    expect(bar.pager.querySelector('.jp-SlurmJobs-page')?.textContent).toBe(
      '51–100 of 10,020 jobs'
    );
    const state = bar.filters.querySelector('.jp-SlurmJobs-stateFilter') as HTMLSelectElement;
    state.value = 'FAILED';
    state.dispatchEvent(new Event('change'));
    expect(queries.pop()).toMatchObject({ state: 'FAILED', offset: 0 });
  });

  it('applies typed text once typing pauses', () => {
    const { bar, queries } = setup();
    const input = bar.filters.querySelector('.jp-SlurmJobs-textFilter') as HTMLInputElement;
    input.value = 'L1';
    input.dispatchEvent(new Event('input'));
    input.value = 'L12';
    input.dispatchEvent(new Event('input'));
    expect(queries).toHaveLength(0);
    jest.advanceTimersByTime(TYPING_PAUSE_MS);
    expect(queries).toEqual([{ offset: 0, limit: 50, state: '', name: '', text: 'L12' }]);
  });

  it('goes one page further at each click, even before the answer came', () => {
    const { bar, queries } = setup();
    const older = bar.pager.querySelector('.jp-SlurmJobs-older') as HTMLButtonElement;
    older.click();
    older.click();
    expect(queries.map(query => query.offset)).toEqual([50, 100]);
  });

  it('hides the pager when every job fits in one page', () => {
    const { bar } = setup();
    bar.show(page({ total: 3, all: 3, jobs: [row(), row(), row()] }));
    expect(bar.pager.hidden).toBe(true);
  });
});

describe('clean up', () => {
  it('reads the form', () => {
    const form = cleanFormNode({ states: ['FAILED'], olderThanDays: 30 });
    expect(readCleanForm(form)).toEqual({ states: ['FAILED'], olderThanDays: 30 });
    const boxes = form.querySelectorAll<HTMLInputElement>('input[name="state"]');
    boxes[0].checked = true; // COMPLETED
    (form.querySelector('input[name="days"]') as HTMLInputElement).value = 'soon';
    expect(readCleanForm(form)).toEqual({ states: ['COMPLETED', 'FAILED'], olderThanDays: 0 });
  });

  it('asks with what the dry run found', () => {
    const request = { states: ['COMPLETED'], olderThanDays: 7 };
    const report = { removed: 9000, bytes: 12.3 * 1024 * 1024, dry_run: true, kept: [] };
    expect(cleanQuestion(report, request)).toBe(
      'Remove the files of 9,000 jobs (COMPLETED) that ended more than 7 days ago (12.3 MB)? ' +
        'Their results and logs are deleted. Jobs that still run are never removed.'
    );
    expect(cleanQuestion({ ...report, removed: 0 }, request)).toBe(
      'No job (COMPLETED) that ended more than 7 days ago to remove.'
    );
    const kept = [{ id: '12', folder: '/j', why: 'Slurm still has it RUNNING' }];
    expect(cleanQuestion({ ...report, removed: 1, kept }, { states: [], olderThanDays: 0 })).toBe(
      'Remove the files of 1 job (12.3 MB)? Their results and logs are deleted. Jobs that ' +
        'still run are never removed. 1 that match are kept: Slurm still has it RUNNING.'
    );
    expect(formatBytes(512)).toBe('512 bytes');
  });
});
