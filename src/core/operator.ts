/**
 * Who runs a command, as written into evidence (diff reviews, rebuild drills). One precedence rule:
 * an explicit --operator, then $PI_IMAGE_OPERATOR, then the user behind sudo ($SUDO_USER), then
 * $USER / $LOGNAME, then the account name the system reports, then "unknown".
 */
export interface OperatorSources {
  /** --operator, when the command has it */
  flag?: string | undefined;
  env: NodeJS.ProcessEnv;
  /** the account name from the operating system (adapters/system.ts), when it can tell */
  systemUser?: string | undefined;
}

export function operatorName(s: OperatorSources): string {
  const candidates = [s.flag, s.env.PI_IMAGE_OPERATOR, s.env.SUDO_USER, s.env.USER, s.env.LOGNAME, s.systemUser];
  for (const c of candidates) {
    const v = c?.trim();
    if (v) return v;
  }
  return 'unknown';
}
