/**
 * `flash --eject`: whether the card is powered off once the flash is done, as rpi-imager ejects the
 * drive after writing it (its "eject media when finished" setting). Pure: the app layer asks, the
 * blockdev adapter does it (udisksctl power-off, else the kernel's SCSI device delete).
 *
 * - after a read-back that failed, the card stays attached: it is to be flashed again (or thrown
 *   away), and the operator may want to look at it;
 * - after a verified write, or one whose verification was skipped (--no-verify: the write itself
 *   completed and was synced), it is ejected;
 * - a loop device (a file posing as a disk, accepted only by the test override) has no drive to
 *   power off: nothing is done, and a note says so.
 */
export type EjectDecision = { eject: true } | { eject: false; note: string };

export function ejectDecision(o: { device: string; deviceType?: string | undefined; verify: 'ok' | 'failed' | 'skipped' }): EjectDecision {
  if (o.verify === 'failed') return { eject: false, note: `not ejecting ${o.device}: its read-back check failed; it stays attached to be flashed again` };
  if (o.deviceType === 'loop' || /^\/dev\/loop\d+$/.test(o.device)) {
    return { eject: false, note: `not ejecting ${o.device}: a loop device (a file posing as a disk) has no drive to power off; --eject does nothing here` };
  }
  return { eject: true };
}
