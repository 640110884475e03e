/**
 * The operator as evidence names them: the one precedence rule of src/core/operator.ts, fed with the
 * account name the system reports (adapters/system.ts). Commands call this; they read no system
 * facts themselves.
 */
import { hostName, systemUser } from '../adapters/system.js';
import { operatorName } from '../core/operator.js';

/** Who runs the command: --operator, $PI_IMAGE_OPERATOR, $SUDO_USER, $USER, $LOGNAME, the system's account name. */
export function currentOperator(o: { flag?: string | undefined; env: NodeJS.ProcessEnv }): string {
  return operatorName({ flag: o.flag, env: o.env, systemUser: systemUser() });
}

/** `operator@host`, as a diff review records who made it and where. */
export function operatorAtHost(env: NodeJS.ProcessEnv): string {
  return `${currentOperator({ env })}@${hostName()}`;
}
