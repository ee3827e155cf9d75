import {
  availableActions,
  describeEvent,
  elapsedNow,
  formatElapsed,
  isLive,
  jobKey,
  jobsQuery,
  sortNewestFirst
} from '../model';
import { row } from './rows';

describe('formatElapsed', () => {
  it.each([
    [null, '—'],
    [undefined, '—'],
    [NaN, '—'],
    [0, '0s'],
    [59.9, '59s'],
    [65, '1m 05s'],
    [3600 + 3 * 60 + 7, '1h 03m'],
    [86400 + 4 * 3600, '1d 04h'],
    [-5, '0s']
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

describe('sortNewestFirst', () => {
  it('orders by submission time, then by numeric id, without mutating', () => {
    const rows = [
      row({ id: 'L2', submitted_at: 10 }),
      row({ id: 'L10', submitted_at: 10 }),
      row({ id: 'L9', submitted_at: 30 }),
      row({ id: 'L1', submitted_at: null })
    ];
    const sorted = sortNewestFirst(rows);
    expect(sorted.map(r => r.id)).toEqual(['L9', 'L10', 'L2', 'L1']);
    expect(rows[0].id).toBe('L2');
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
      log: true
    });
    expect(availableActions('PENDING')).toEqual({
      preempt: false,
      timeout: false,
      cancel: true,
      log: true
    });
    expect(availableActions('COMPLETED')).toEqual({
      preempt: false,
      timeout: false,
      cancel: false,
      log: true
    });
  });
});

describe('jobsQuery and jobKey', () => {
  it('repeats folder and drops blanks', () => {
    expect(jobsQuery([])).toBe('');
    expect(jobsQuery(['a b', ' ', 'x/../y'])).toBe('?folder=a+b&folder=x%2F..%2Fy');
  });

  it('tells apart jobs with one id in two folders', () => {
    expect(jobKey(row({ folder: '/a' }))).not.toBe(jobKey(row({ folder: '/b' })));
  });
});
