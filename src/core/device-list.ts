/**
 * `pi-image flash` without `--device`: the drives it could write, as Raspberry Pi Imager's storage
 * picker shows them. Pure: takes the lsblk tree (src/core/devices.ts parses it) and uses the same
 * classification as the write itself, so a drive listed as usable is one flash accepts.
 *
 * Listed: whole removable disks (SD cards, USB drives, card readers), each with its verdict for the
 * image (usable, or why not: no medium, mounted, read-only, too small, holds the image…). Not listed:
 * internal disks, eMMC, zram, partitions, and loop devices unless the test override allows them.
 */
import { type BlockDevice, classifyDevice, humanSize, notRemovableReason } from './devices.js';

export interface FlashCandidate {
  device: string;
  /** vendor + model as lsblk reports them, or null */
  model: string | null;
  size: number;
  transport: string | null;
  removable: boolean;
  usable: boolean;
  /** why flash would refuse it now (empty when usable) */
  problems: string[];
  warnings: string[];
}

export interface CandidateOptions {
  /** bytes to write; 0 when no image was named (then only an empty reader is refused for size) */
  imageSize: number;
  sourceDevices?: readonly string[];
  allowLoop?: boolean;
}

export function flashCandidates(devices: readonly BlockDevice[], opts: CandidateOptions): FlashCandidate[] {
  const out: FlashCandidate[] = [];
  for (const d of devices) {
    const loop = d.type === 'loop' && opts.allowLoop === true;
    // eMMC hardware partitions (mmcblk0boot0, mmcblk0rpmb) show up as disks of their own
    const emmcPart = /^mmcblk\d+(boot\d+|rpmb)$/.test(d.name);
    if (!loop && (d.type !== 'disk' || emmcPart || d.name.startsWith('zram') || notRemovableReason(d, devices) !== undefined)) continue;
    const verdict = classifyDevice({
      devices,
      target: d.path,
      imageSize: opts.imageSize,
      ...(opts.sourceDevices ? { sourceDevices: opts.sourceDevices } : {}),
      ...(opts.allowLoop ? { allowLoop: true } : {}),
    });
    const model = [d.vendor, d.model].filter((s): s is string => s !== null && !/^0x[0-9a-f]+$/i.test(s)).join(' ');
    out.push({
      device: d.path,
      model: model === '' ? null : model,
      size: d.size,
      transport: d.tran,
      removable: d.rm || d.hotplug,
      usable: verdict.ok,
      problems: verdict.refusals,
      warnings: verdict.warnings,
    });
  }
  // usable drives first, then by path
  return out.sort((a, b) => Number(b.usable) - Number(a.usable) || a.device.localeCompare(b.device));
}

/** A short reason for the table: the first problem, cut at its first clause. */
function shortProblem(problem: string): string {
  const text = problem.replace(/^\/dev\/\S+ (is |has |holds )?/, '');
  const cut = text.search(/ — |: |; /);
  return (cut === -1 ? text : text.slice(0, cut)).trim();
}

/** The table `flash` prints: DEVICE SIZE TRANSPORT MODEL STATUS. */
export function formatCandidates(list: readonly FlashCandidate[]): string[] {
  const rows = list.map((c) => [c.device, humanSize(c.size), c.transport ?? '-', c.model ?? '-', c.usable ? 'ok' : shortProblem(c.problems[0] ?? 'refused')]);
  const head = ['DEVICE', 'SIZE', 'TRANSPORT', 'MODEL', 'STATUS'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}
