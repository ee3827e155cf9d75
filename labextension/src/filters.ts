/**
 * The sidebar's filter bar and pager: state, name and text filters, and the page's neighbours.
 */

import {
  DEFAULT_QUERY,
  IJobPage,
  IJobQuery,
  nameChoices,
  neighbourPages,
  pageText,
  stateChoices
} from './model';

/** How long typing pauses before the text filter applies. */
export const TYPING_PAUSE_MS = 300;

/** Called with the new query when the user changes a filter or the page. */
export type QueryHandler = (query: IJobQuery) => void;

export class FilterBar {
  constructor(private readonly onChange: QueryHandler) {
    this.filters = document.createElement('div');
    this.filters.className = 'jp-SlurmJobs-filters';
    this._state = select('jp-SlurmJobs-stateFilter', 'Only jobs in this state');
    this._name = select('jp-SlurmJobs-nameFilter', 'Only jobs with this name');
    this._text = document.createElement('input');
    this._text.type = 'search';
    this._text.className = 'jp-SlurmJobs-textFilter jp-mod-styled';
    this._text.placeholder = 'Filter: job id, or text of a name, state, folder';
    this._text.title =
      'Only the job with this id (or the elements of this array), or jobs whose name, state ' +
      'or folder contains this';
    this.filters.append(this._state, this._name, this._text);
    this._state.addEventListener('change', () => this.change({ state: this._state.value }));
    this._name.addEventListener('change', () => this.change({ name: this._name.value }));
    this._text.addEventListener('input', () => {
      window.clearTimeout(this._typing);
      this._typing = window.setTimeout(
        () => this.change({ text: this._text.value }),
        TYPING_PAUSE_MS
      );
    });

    this.pager = document.createElement('div');
    this.pager.className = 'jp-SlurmJobs-pager';
    this._newer = button('jp-SlurmJobs-newer', '‹ Newer', 'The newer jobs');
    this._older = button('jp-SlurmJobs-older', 'Older ›', 'The older jobs');
    this._where = document.createElement('span');
    this._where.className = 'jp-SlurmJobs-page';
    this.pager.append(this._newer, this._where, this._older);
    this._newer.addEventListener('click', () => this.turn(-1));
    this._older.addEventListener('click', () => this.turn(1));
    this.show(null);
  }

  /** The filters' element and the pager's. */
  readonly filters: HTMLDivElement;
  readonly pager: HTMLDivElement;

  /** The query the bar says now. */
  get query(): IJobQuery {
    return this._query;
  }

  /** The page size (a setting): back to the first page. */
  set limit(value: number) {
    if (value !== this._query.limit) {
      this._query = { ...this._query, limit: value, offset: 0 };
    }
  }

  /** Show where ``page`` stands, and the filters' choices it counted. */
  show(page: IJobPage | null): void {
    this._page = page;
    fill(this._state, stateChoices(page?.counts ?? null, this._query.state), this._query.state);
    fill(this._name, nameChoices(page?.names ?? null, this._query.name), this._query.name);
    const filtered = Boolean(this._query.state || this._query.name || this._query.text.trim());
    this._where.textContent = page ? pageText(page, filtered) : '';
    this.pager.hidden = !page || page.total <= page.limit;
    this.enableTurns();
  }

  /** Forget the page timer (the panel is disposed). */
  dispose(): void {
    window.clearTimeout(this._typing);
  }

  private change(filter: Partial<IJobQuery>): void {
    this._query = { ...this._query, ...filter, offset: 0 };
    this.onChange(this._query);
  }

  /** The next page or the one before, from the page asked for last: a second click before
   * the first one's answer goes one page further. */
  private turn(direction: number): void {
    const neighbours = this.neighbours();
    const offset = direction < 0 ? neighbours.newer : neighbours.older;
    if (offset !== null) {
      this._query = { ...this._query, offset };
      this.enableTurns();
      this.onChange(this._query);
    }
  }

  private neighbours(): { newer: number | null; older: number | null } {
    const total = this._page?.total ?? 0;
    return neighbourPages(this._query.offset, this._query.limit, total);
  }

  private enableTurns(): void {
    const neighbours = this.neighbours();
    this._newer.disabled = neighbours.newer === null;
    this._older.disabled = neighbours.older === null;
  }

  private _query: IJobQuery = { ...DEFAULT_QUERY };
  private _page: IJobPage | null = null;
  private _typing = 0;
  private readonly _state: HTMLSelectElement;
  private readonly _name: HTMLSelectElement;
  private readonly _text: HTMLInputElement;
  private readonly _newer: HTMLButtonElement;
  private readonly _older: HTMLButtonElement;
  private readonly _where: HTMLSpanElement;
}

function select(className: string, title: string): HTMLSelectElement {
  const element = document.createElement('select');
  element.className = `${className} jp-mod-styled`;
  element.title = title;
  return element;
}

/** A compact styled button. */
export function button(className: string, label: string, title: string): HTMLButtonElement {
  const element = document.createElement('button');
  element.type = 'button';
  element.className = `${className} jp-mod-styled`;
  element.textContent = label;
  element.title = title;
  return element;
}

/** Replace a select's options (only when they changed: an open menu stays open). */
function fill(element: HTMLSelectElement, choices: [string, string][], value: string): void {
  const current = Array.from(element.options).map(option => [option.value, option.text]);
  if (JSON.stringify(current) !== JSON.stringify(choices)) {
    element.replaceChildren(
      ...choices.map(([choice, label]) => new Option(label, choice, false, choice === value))
    );
  }
  element.value = value;
}
