/** Reads the Handlebars templates in cloud-init/ (relative to the package root) for the pure renderer. */
import { readFile } from 'node:fs/promises';
import { EnvironmentError } from '../core/errors.js';
import type { Templates } from '../core/render/templates.js';
import { packagePath } from './paths.js';

/** Template file of each template, in cloud-init/. */
export const TEMPLATE_FILES: Record<keyof Templates, string> = {
  joinScript: 'pi-image-join.sh.hbs',
  joinUnit: 'pi-image-join.service.hbs',
  dataDiskDropIn: 'k3s-data-disk.conf.hbs',
};

/** Loads every template source; `dir` defaults to the package's cloud-init/ directory. */
export async function loadTemplates(dir: string = packagePath('cloud-init')): Promise<Templates> {
  const entries = await Promise.all(
    (Object.entries(TEMPLATE_FILES) as [keyof Templates, string][]).map(async ([name, file]) => {
      const path = `${dir}/${file}`;
      try {
        return [name, await readFile(path, 'utf8')] as const;
      } catch (cause) {
        throw new EnvironmentError(`template ${path} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, {
          hint: 'the pi-image installation is incomplete: reinstall it (cloud-init/ must ship with the package)',
          cause,
        });
      }
    }),
  );
  return Object.fromEntries(entries) as unknown as Templates;
}
