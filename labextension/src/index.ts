/**
 * JupyterLab plugin: the "Slurm jobs" left-sidebar panel of jupyter_slurm_ckpt.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { JobLogView } from './logview';
import { IJobRow } from './model';
import { DEFAULT_SETTINGS, IPanelSettings, SlurmJobsPanel } from './panel';

const PLUGIN_ID = 'jupyter-slurm-ckpt:sidebar';
const OPEN_COMMAND = 'jupyter-slurm-ckpt:open';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="3" y="4" width="18" height="4" rx="1"/>
    <rect x="3" y="10" width="12" height="4" rx="1"/>
    <rect x="3" y="16" width="15" height="4" rx="1"/>
    <path d="M19.5 10.5a3 3 0 1 1-2.1.9l-.9-.9H20v3.5l-1-1a1.6 1.6 0 1 0 .5-1.1z"/>
  </g>
</svg>`;

export const slurmJobsIcon = new LabIcon({ name: 'jupyter-slurm-ckpt:jobs', svgstr: ICON_SVG });

function readSettings(settings: ISettingRegistry.ISettings): IPanelSettings {
  const composite = settings.composite as Partial<IPanelSettings>;
  return {
    refreshInterval: Number(composite.refreshInterval ?? DEFAULT_SETTINGS.refreshInterval),
    maxRefreshInterval: Number(
      composite.maxRefreshInterval ?? DEFAULT_SETTINGS.maxRefreshInterval
    ),
    jobFolders: Array.isArray(composite.jobFolders) ? composite.jobFolders.map(String) : [],
    logLines: Number(composite.logLines ?? DEFAULT_SETTINGS.logLines),
    pageSize: Number(composite.pageSize ?? DEFAULT_SETTINGS.pageSize)
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A sidebar listing Slurm (and local) jobs, with checkpoint-testing actions.',
  autoStart: true,
  optional: [ISettingRegistry, ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    registry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    let panel: SlurmJobsPanel;
    const openLog = (row: IJobRow) => {
      const content = new JobLogView(
        row,
        () => panel.settings.logLines,
        panel.settings.refreshInterval * 1000
      );
      const existing = Array.from(app.shell.widgets('main')).find(
        widget => widget.id === content.id
      );
      if (existing) {
        content.dispose();
        app.shell.activateById(existing.id);
        return;
      }
      const widget = new MainAreaWidget({ content });
      widget.id = content.id;
      widget.title.label = content.title.label;
      widget.title.caption = content.title.caption;
      widget.title.icon = slurmJobsIcon;
      app.shell.add(widget, 'main', { mode: 'split-right' });
    };
    panel = new SlurmJobsPanel(openLog);
    panel.title.icon = slurmJobsIcon;
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, 'jupyter-slurm-ckpt-sidebar');

    app.commands.addCommand(OPEN_COMMAND, {
      label: 'Show Slurm jobs',
      caption: 'Open the Slurm jobs sidebar',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: OPEN_COMMAND, category: 'Slurm' });

    if (registry) {
      registry
        .load(PLUGIN_ID)
        .then(settings => {
          panel.settings = readSettings(settings);
          settings.changed.connect(() => {
            panel.settings = readSettings(settings);
          });
        })
        .catch(reason => {
          console.error('jupyter-slurm-ckpt: cannot load the sidebar settings', reason);
        });
    }
  }
};

export default plugin;
