/**
 * "Clean up…": the form that says which old jobs to remove (end states, age), as plain DOM
 * (the panel puts it in a dialog).
 */

import { CLEANABLE_STATES, ICleanRequest } from './model';

/** The default age of the jobs a clean-up removes. */
export const DEFAULT_AGE_DAYS = 7;

export const DEFAULT_CLEAN: ICleanRequest = {
  states: CLEANABLE_STATES,
  olderThanDays: DEFAULT_AGE_DAYS
};

/** The form's element: a checkbox per end state and the age in days, set to ``initial``. */
export function cleanFormNode(initial: ICleanRequest = DEFAULT_CLEAN): HTMLElement {
  const form = document.createElement('div');
  form.className = 'jp-SlurmJobs-cleanForm';
  const intro = document.createElement('p');
  intro.textContent =
    'Remove the files (results, logs, checkpoints) of jobs that ended. Jobs that are pending ' +
    'or running are never removed.';
  const states = document.createElement('fieldset');
  const legend = document.createElement('legend');
  legend.textContent = 'Jobs that ended';
  states.append(legend);
  for (const state of CLEANABLE_STATES) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.name = 'state';
    box.value = state;
    box.checked = initial.states.includes(state);
    label.append(box, ` ${state}`);
    states.append(label);
  }
  const age = document.createElement('label');
  age.className = 'jp-SlurmJobs-cleanAge';
  const days = document.createElement('input');
  days.type = 'number';
  days.min = '0';
  days.step = '1';
  days.name = 'days';
  days.value = String(initial.olderThanDays);
  age.append('more than ', days, ' days ago');
  form.append(intro, states, age);
  return form;
}

/** The request the form says (an age that is not a number counts as 0 days). */
export function readCleanForm(form: HTMLElement): ICleanRequest {
  const boxes = Array.from(form.querySelectorAll<HTMLInputElement>('input[name="state"]'));
  const days = Number(form.querySelector<HTMLInputElement>('input[name="days"]')?.value);
  return {
    states: boxes.filter(box => box.checked).map(box => box.value),
    olderThanDays: Number.isFinite(days) && days > 0 ? days : 0
  };
}
