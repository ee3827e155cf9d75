import { JobAction } from '../model';
import { JobListRenderer } from '../render';
import { row } from './rows';

function setup() {
  const list = document.createElement('ul');
  const clicks: [JobAction, string][] = [];
  const renderer = new JobListRenderer(list, (action, r) => clicks.push([action, r.id]));
  return { list, clicks, renderer };
}

const text = (item: Element, field: string) =>
  item.querySelector(`.jp-SlurmJobs-${field}`)?.textContent;

describe('JobListRenderer', () => {
  it('shows one row per job with every column', () => {
    const { list, renderer } = setup();
    renderer.render([row({ id: 'L2', requeues: 3 }), row()], 0, 0);
    expect(list.children).toHaveLength(2);
    const first = list.children[0];
    expect(text(first, 'name')).toBe('train');
    expect(text(first, 'id')).toBe('L2');
    expect(text(first, 'backend')).toBe('local');
    expect(text(first, 'state')).toBe('RUNNING');
    expect(text(first, 'requeues')).toBe('3 requeues');
    expect((first as HTMLElement).dataset.requeues).toBe('3');
    expect(text(first, 'elapsed')).toBe('1m 05s');
    expect(text(first, 'last')).toBe('started run 0 on n1');
  });

  it('updates rows in place and follows the new order', () => {
    const { list, renderer } = setup();
    renderer.render([row({ id: 'L2' }), row({ id: 'L1' })], 0, 0);
    const kept = list.children[1];
    const button = kept.querySelector('button');
    renderer.render(
      [row({ id: 'L3' }), row({ id: 'L1', requeues: 1 }), row({ id: 'L2' })],
      0,
      0
    );
    expect(Array.from(list.children).map(e => (e as HTMLElement).dataset.jobId)).toEqual([
      'L3',
      'L1',
      'L2'
    ]);
    expect(list.children[1]).toBe(kept);
    expect(kept.querySelector('button')).toBe(button);
    expect(text(kept, 'requeues')).toBe('1 requeue');
    renderer.render([row({ id: 'L1' })], 0, 0);
    expect(list.children).toHaveLength(1);
  });

  it('keeps jobs with one id in different folders apart', () => {
    const { list, renderer } = setup();
    renderer.render([row({ folder: '/a' }), row({ folder: '/b' })], 0, 0);
    expect(list.children).toHaveLength(2);
  });

  it('runs the clicked action on the row it shows now', () => {
    const { list, clicks, renderer } = setup();
    renderer.render([row()], 0, 0);
    renderer.render([row({ requeues: 2 })], 0, 0);
    const buttons = list.querySelectorAll<HTMLButtonElement>('button');
    expect(Array.from(buttons).map(b => b.textContent)).toEqual([
      'Simulate preemption',
      'Simulate timeout',
      'Cancel',
      'Resubmit',
      'Show log'
    ]);
    buttons[0].click();
    buttons[4].click();
    expect(clicks).toEqual([
      ['preempt', 'L1'],
      ['log', 'L1']
    ]);
  });

  it('disables actions a job cannot take, and shows a broken job', () => {
    const { list, renderer } = setup();
    renderer.render(
      [
        row({ id: 'L1', state: 'COMPLETED' }),
        row({ id: 'L2', state: 'UNKNOWN', name: null, error: 'JobFolderError: bad json' })
      ],
      0,
      0
    );
    const done = list.children[0];
    const disabled = Array.from(done.querySelectorAll<HTMLButtonElement>('button')).map(
      b => b.disabled
    );
    expect(disabled).toEqual([true, true, true, true, false]);
    const failed = row({ id: 'L3', state: 'FAILED' });
    renderer.render([failed, row({ ...failed, id: 'L4', resubmitted_as: 'L5' })], 0, 0);
    const resubmit = (item: Element): boolean =>
      (item.querySelector('[data-action="resubmit"]') as HTMLButtonElement).disabled;
    expect([resubmit(list.children[0]), resubmit(list.children[1])]).toEqual([false, true]);
    renderer.render(
      [
        row({ id: 'L1', state: 'COMPLETED' }),
        row({ id: 'L2', state: 'UNKNOWN', name: null, error: 'JobFolderError: bad json' })
      ],
      0,
      0
    );
    const broken = list.children[1];
    expect(broken.classList.contains('jp-mod-error')).toBe(true);
    expect(text(broken, 'last')).toBe('JobFolderError: bad json');
    expect(text(broken, 'name')).toBe('(unreadable job)');
  });

  it('shows a progress bar once the job reports progress, and hides it otherwise', () => {
    const { list, renderer } = setup();
    const progress = {
      step: 50,
      total: 200,
      fraction: 0.25,
      run: 1,
      rate: 5,
      eta_s: 30,
      resumed_from: 50,
      desc: '',
      details: '',
      source: 'report' as const
    };
    renderer.render([row({ progress }), row({ id: 'L2' })], 0, 0);
    const [reporting, silent] = Array.from(list.children) as HTMLElement[];
    const block = reporting.querySelector('.jp-SlurmJobs-progress') as HTMLElement;
    expect(block.hidden).toBe(false);
    expect((reporting.querySelector('.jp-SlurmJobs-fill') as HTMLElement).style.width).toBe(
      '25.0%'
    );
    expect(text(reporting, 'progresstext')).toBe(
      '50/200 (25%) · 5/s · 30s left · resumed at 50 in run #1'
    );
    expect((silent.querySelector('.jp-SlurmJobs-progress') as HTMLElement).hidden).toBe(true);

    // A tqdm bar without a total: the words only.
    renderer.render(
      [
        row({
          progress: { ...progress, total: null, fraction: null, eta_s: null, source: 'log' }
        })
      ],
      0,
      0
    );
    const bar = list.children[0].querySelector('.jp-SlurmJobs-bar') as HTMLElement;
    expect(bar.hidden).toBe(true);
    expect(text(list.children[0], 'progresstext')).toBe('50 · 5/s · resumed at 50 in run #1');
  });

  it('ticks the elapsed time of live jobs between fetches', () => {
    const { list, renderer } = setup();
    const rows = [row({ elapsed_s: 10 }), row({ id: 'L2', state: 'COMPLETED', elapsed_s: 10 })];
    renderer.render(rows, 1000, 1000);
    renderer.tick(rows, 1000, 6000);
    expect(text(list.children[0], 'elapsed')).toBe('15s');
    expect(text(list.children[1], 'elapsed')).toBe('10s');
  });
});
