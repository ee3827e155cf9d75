import {
  IJobProgress,
  availableActions,
  describeEvent,
  elapsedNow,
  elapsedText,
  formatCount,
  formatElapsed,
  formatRate,
  isLive,
  jobKey,
  jobsQuery,
  progressText,
  runElapsedNow
} from '../model';
import { row } from './rows';

function progress(overrides: Partial<IJobProgress> = {}): IJobProgress {
  return {
    step: 120,
    total: 200,
    fraction: 0.6,
    run: 0,
    rate: 3.2,
    eta_s: 25,
    resumed_from: null,
    desc: '',
    details: '',
    source: 'report',
    ...overrides
  };
}

describe('formatElapsed', () => {
  it.each([
    [null, '—'],
    [undefined, '—'],
    [NaN, '—'],
    [0, '0.0s'],
    [0.96, '0.9s'],
    [9.99, '9.9s'],
    [10, '10s'],
    [59.9, '59s'],
    [65, '1m 05s'],
    [3600 + 3 * 60 + 7, '1h 03m'],
    [86400 + 4 * 3600, '1d 04h'],
    [-5, '0.0s']
  ])('%p -> %p', (seconds, expected) => {
    expect(formatElapsed(seconds as number | null)).toBe(expected);
  });
});

describe('elapsedNow', () => {
  it('adds the time since the fetch for a live job only', () => {
    expect(elapsedNow(row({ elapsed_s: 10 }), 5000, 8000)).toBe(13);
    expect(elapsedNow(row({ state: 'COMPLETED', elapsed_s: 10 }), 5000, 8000)).toBe(10);
    expect(elapsedNow(row({ elapsed_s: null }), 5000, 8000)).toBeNull();
  });

  it('never goes backwards when the clock does', () => {
    expect(elapsedNow(row({ elapsed_s: 10 }), 8000, 5000)).toBe(10);
  });
});

describe('elapsedText and runElapsedNow', () => {
  it('shows the current run beside the whole job once it was requeued', () => {
    const requeued = row({ runs: 2, elapsed_s: 100, run_elapsed_s: 20 });
    expect(elapsedText(requeued, 0, 5000)).toBe('1m 45s (run #1: 25s)');
    expect(elapsedText(row({ elapsed_s: 100, run_elapsed_s: 100 }), 0, 0)).toBe('1m 40s');
  });

  it("stops a run's clock when it was requeued or the job ended", () => {
    const waiting = row({ state: 'REQUEUED', runs: 1, run_elapsed_s: 20, run_ended_at: 30 });
    expect(runElapsedNow(waiting, 0, 5000)).toBe(20);
    expect(runElapsedNow(row({ state: 'COMPLETED', run_elapsed_s: 20 }), 0, 5000)).toBe(20);
    expect(runElapsedNow(row({ run_elapsed_s: null }), 0, 5000)).toBeNull();
  });
});

describe('progress', () => {
  it.each([
    [progress(), '120/200 (60%) · 3.2/s · 25s left'],
    [
      progress({ desc: 'train', run: 1, resumed_from: 50, details: 'loss=0.3' }),
      'train 120/200 (60%) · 3.2/s · 25s left · resumed at 50 in run #1 · loss=0.3'
    ],
    [progress({ total: null, fraction: null, eta_s: null, rate: 0.25 }), '120 · 4s each'],
    [progress({ step: 200, fraction: 1, eta_s: 0, rate: null }), '200/200 (100%)']
  ])('%j -> %p', (value, expected) => {
    expect(progressText(value, true)).toBe(expected);
  });

  it('gives no time left for a job that has ended', () => {
    expect(progressText(progress(), false)).toBe('120/200 (60%) · 3.2/s');
  });

  it('formats counts and rates', () => {
    expect(formatCount(1200)).toBe('1,200');
    expect(formatCount(3.14159)).toBe('3.142');
    expect(formatRate(12.345)).toBe('12.3/s');
    expect(formatRate(0)).toBe('0/s');
  });
});

describe('describeEvent', () => {
  it.each([
    [{ t: 1, event: 'started', run: 2, node: 'n3' }, 'started run 2 on n3'],
    [{ t: 1, event: 'signal', reason: 'preemption', task: 0 }, 'preemption signal'],
    [{ t: 1, event: 'checkpoint', seconds: 0.4123, requeue: true }, 'checkpoint 0.41 s'],
    [{ t: 1, event: 'checkpoint', seconds: 1, requeue: false }, 'checkpoint 1.00 s (no requeue)'],
    [{ t: 1, event: 'requeued', run: 1, timeouts_left: 3 }, 'requeued (run 1)'],
    [{ t: 1, event: 'not_requeued', reason: 'checkpoint() returned None' }, 'not requeued: checkpoint() returned None'],
    [{ t: 1, event: 'failed', reason: 'ValueError: x' }, 'failed: ValueError: x'],
    [{ t: 1, event: 'completed', task: 0 }, 'completed'],
    [{ t: 1, event: 'progress', run: 1, step: 1200, total: 2000 }, 'progress: step 1,200 of 2,000'],
    [{ t: 1, event: 'progress', run: 0, epoch: 7 }, 'progress: epoch=7'],
    [null, '']
  ])('%j -> %p', (event, expected) => {
    expect(describeEvent(event)).toBe(expected);
  });
});

describe('states and actions', () => {
  it('knows which states are live', () => {
    expect(isLive('RUNNING')).toBe(true);
    expect(isLive('REQUEUED')).toBe(true);
    expect(isLive('PENDING')).toBe(true);
    expect(isLive('COMPLETED')).toBe(false);
    expect(isLive('CANCELLED')).toBe(false);
    expect(isLive('UNKNOWN')).toBe(false);
  });

  it('offers interrupts only while running, cancel while live, log always', () => {
    expect(availableActions('RUNNING')).toEqual({
      preempt: true,
      timeout: true,
      cancel: true,
      resubmit: false,
      log: true
    });
    expect(availableActions('PENDING')).toEqual({
      preempt: false,
      timeout: false,
      cancel: true,
      resubmit: false,
      log: true
    });
    expect(availableActions('COMPLETED')).toEqual({
      preempt: false,
      timeout: false,
      cancel: false,
      resubmit: false,
      log: true
    });
  });

  it('offers resubmit for a job that ended without its result, once', () => {
    expect(availableActions('FAILED').resubmit).toBe(true);
    expect(availableActions('TIMEOUT').resubmit).toBe(true);
    expect(availableActions('CANCELLED').resubmit).toBe(true);
    expect(availableActions('FAILED', '124').resubmit).toBe(false);
    expect(availableActions('DONE').resubmit).toBe(false);
  });
});

describe('jobsQuery and jobKey', () => {
  it('repeats folder and drops blanks', () => {
    expect(jobsQuery([])).toBe('');
    expect(jobsQuery(['a b', ' ', 'x/../y'])).toBe('?folder=a+b&folder=x%2F..%2Fy');
  });

  it('asks for a page and a filter', () => {
    expect(jobsQuery(['jobs'], { offset: 100, limit: 50, state: 'FAILED', name: ' ', text: 'L1 ' })).toBe(
      '?folder=jobs&offset=100&limit=50&state=FAILED&q=L1'
    );
    expect(jobsQuery([], { offset: 0, limit: 50, state: '', name: 'train', text: '' })).toBe(
      '?limit=50&name=train'
    );
  });

  it('tells apart jobs with one id in two folders', () => {
    expect(jobKey(row({ folder: '/a' }))).not.toBe(jobKey(row({ folder: '/b' })));
  });
});
