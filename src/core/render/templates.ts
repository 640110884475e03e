import Handlebars from 'handlebars';
import { InternalError } from '../errors.js';
import { shq } from './shell.js';
import { toYaml } from './yaml.js';

/** Template sources (Handlebars), as read from cloud-init/*.hbs by src/adapters/templates.ts. */
export interface Templates {
  /** cloud-init/pi-image-join.sh.hbs: the join script */
  joinScript: string;
  /** cloud-init/pi-image-join.service.hbs: its systemd unit */
  joinUnit: string;
  /** cloud-init/k3s-data-disk.conf.hbs: k3s unit drop-in requiring the data disk mount */
  dataDiskDropIn: string;
}

export type TemplateName = keyof Templates;
export type CompiledTemplates = Record<TemplateName, (context: Record<string, unknown>) => string>;

/**
 * Compile the templates in an isolated Handlebars environment: no HTML escaping (`noEscape`), strict
 * (a missing variable is an error, not an empty string). Values reach shell code only through
 * `{{shq x}}` (single-quoted) and YAML only through `{{yaml x}}`.
 */
export function compileTemplates(sources: Templates): CompiledTemplates {
  const hb = Handlebars.create();
  hb.registerHelper('shq', (value: unknown) => shq(value));
  hb.registerHelper('yaml', (value: unknown) => toYaml(value).replace(/\n$/, ''));
  const out = {} as CompiledTemplates;
  for (const name of Object.keys(sources) as TemplateName[]) {
    const template = hb.compile(sources[name], { noEscape: true, strict: true });
    out[name] = (context) => {
      try {
        return template(context);
      } catch (cause) {
        throw new InternalError(`template ${name} failed to render: ${(cause as Error).message}`, { cause });
      }
    };
  }
  return out;
}
