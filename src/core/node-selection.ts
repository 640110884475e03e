/**
 * Which nodes a command works on: hostnames given on the command line, or --all. One place for the
 * rule and for the messages ("which node?", "not both", "<name> is not in the inventory").
 */
import { InputError } from './errors.js';
import type { Inventory, NodeModel } from './model.js';

type NodesOf = Pick<Inventory, 'nodes' | 'dir'>;

function knownHint(inv: NodesOf): string {
  const names = inv.nodes.map((n) => n.hostname);
  return `known nodes: ${names.length ? names.join(', ') : '(none)'} (add nodes/<hostname>.yaml to add one)`;
}

/** The error for hostnames that are not in the inventory. */
export function unknownNodesError(inv: NodesOf, unknown: readonly string[]): InputError {
  return new InputError(`${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not in the inventory ${inv.dir}`, { hint: knownHint(inv) });
}

/** Hostnames of `names` that are not in the inventory (in the order given, without repeats). */
export function unknownNodes(inv: NodesOf, names: readonly string[]): string[] {
  const known = new Set(inv.nodes.map((n) => n.hostname));
  return [...new Set(names.filter((n) => !known.has(n)))];
}

/** Throws the one unknown-node message when any of `names` is not in the inventory. */
export function assertKnownNodes(inv: NodesOf, names: readonly string[]): void {
  const unknown = unknownNodes(inv, names);
  if (unknown.length) throw unknownNodesError(inv, unknown);
}

/** The node named `hostname`; InputError when there is none. */
export function findNode(inv: NodesOf, hostname: string): NodeModel {
  const node = inv.nodes.find((n) => n.hostname === hostname);
  if (!node) throw unknownNodesError(inv, [hostname]);
  return node;
}

export interface NodeChoice {
  /** hostnames given on the command line */
  names: readonly string[];
  /** --all */
  all: boolean;
}

/**
 * "Names or --all", checked before the inventory is read: exactly one of the two. `command` is used
 * in the hint (`pi-image <command> <hostname>`).
 */
export function checkNodeChoice(choice: NodeChoice, command: string): void {
  if (choice.all && choice.names.length > 0) {
    throw new InputError('give node names or --all, not both', { hint: `e.g. \`pi-image ${command} <hostname>\` or \`pi-image ${command} --all\`` });
  }
  if (!choice.all && choice.names.length === 0) {
    throw new InputError('which node? give one or more hostnames, or --all', { hint: `e.g. \`pi-image ${command} <hostname>\` or \`pi-image ${command} --all\`` });
  }
}

/** The hostnames a names-or-all choice stands for (given order, no repeats; every node with --all). */
export function selectNodes(inv: NodesOf, choice: NodeChoice, command: string): string[] {
  checkNodeChoice(choice, command);
  if (choice.all) return inv.nodes.map((n) => n.hostname);
  assertKnownNodes(inv, choice.names);
  return [...new Set(choice.names)];
}
