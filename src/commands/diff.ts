import { isAbsolute, join } from 'node:path';
import type { CommandModule } from 'yargs';
import { inventoryHash } from '../app/build.js';
import { DEFAULT_EVIDENCE_DIR, diffCluster, diffNodes, writeDiffEvidence } from '../app/diff.js';
import { displayPath, loadInventory } from '../app/inventory.js';
import { printJson } from '../app/io.js';
import { toolVersion } from '../app/version.js';
import {
  clusterSummaryMarkdown,
  combinedPatch,
  countNode,
  type EvidenceMeta,
  formatClusterDiff,
  formatNodeDiff,
  nodesSummaryMarkdown,
  nodesVerdict,
} from '../core/diff.js';
import { ChecksFailedError, InputError } from '../core/errors.js';
import { operatorAtHost } from '../app/operator.js';
import { allOption, buildDirOption, kubeconfigOption, kubeContextOption } from './options.js';
import { redact } from '../core/redact.js';
import type { GlobalArgs } from './context.js';

interface DiffArgs extends GlobalArgs {
  node?: string;
  all: boolean;
  cluster: boolean;
  'build-dir': string;
  evidence?: string;
  kubeconfig?: string;
  context?: string;
  manifests?: string;
}

export const diffCommand: CommandModule<GlobalArgs, DiffArgs> = {
  command: 'diff [node]',
  describe: 'what reflashing would change on a node (rendered now vs its last build, secrets masked), or on the cluster (kubectl diff)',
  builder: (y) =>
    y
      .positional('node', { type: 'string', describe: 'node hostname (or --all, or --cluster)' })
      .option('all', allOption())
      .option('cluster', { type: 'boolean', default: false, describe: 'diff manifests/ against the running cluster with `kubectl diff`' })
      .option('build-dir', buildDirOption())
      .option('evidence', {
        alias: 'evidence-dir',
        type: 'string',
        describe: `store the diff and a review summary under DIR/<YYYY-MM-DD>-<name>/ (no DIR: ${DEFAULT_EVIDENCE_DIR})`,
      })
      .option('kubeconfig', kubeconfigOption('with --cluster: kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)'))
      .option('context', kubeContextOption('with --cluster: kubeconfig context'))
      .option('manifests', { type: 'string', describe: 'with --cluster: manifests directory (default: the one pi-image ships)' })
      .example('$0 diff pi-cluster-2', 'what reflashing pi-cluster-2 would change (exit 1 when anything would)')
      .example('$0 diff --all --evidence', `every node; keep the review evidence under ${DEFAULT_EVIDENCE_DIR}`)
      .example('$0 diff --cluster --kubeconfig ~/.kube/pi-cluster.yaml', 'live objects vs manifests/'),
  handler: async (argv) => {
    const out = argv.ctx.io;
    const modes = [argv.node !== undefined, argv.all, argv.cluster].filter(Boolean).length;
    if (modes !== 1) {
      throw new InputError(modes === 0 ? 'what to diff? give a node, --all or --cluster' : 'give one of: a node, --all, --cluster', {
        hint: 'e.g. `pi-image diff pi-cluster-2`, `pi-image diff --all` or `pi-image diff --cluster`',
      });
    }
    if (!argv.cluster) {
      for (const flag of ['kubeconfig', 'context', 'manifests'] as const) {
        if (argv[flag] !== undefined) throw new InputError(`--${flag} only applies to --cluster`);
      }
    }
    const now = new Date(argv.ctx.clock.now());
    const evidenceDir =
      argv.evidence === undefined ? undefined : argv.evidence === '' ? join(out.cwd, DEFAULT_EVIDENCE_DIR) : isAbsolute(argv.evidence) ? argv.evidence : join(out.cwd, argv.evidence);
    const inventory = await loadInventory(argv.inventory, { cwd: out.cwd });
    const meta = (name: string, command: string, secretsVersion?: number): EvidenceMeta => ({
      name,
      who: operatorAtHost(out.env),
      when: now.toISOString(),
      command,
      toolVersion: toolVersion(),
      inventorySha256: inventoryHash(inventory),
      ...(secretsVersion === undefined ? {} : { secretsVersion }),
    });

    if (argv.cluster) {
      const c = await diffCluster({
        ...(argv.manifests ? { manifestsDir: argv.manifests } : {}),
        ...(argv.kubeconfig ? { kubeconfig: argv.kubeconfig } : {}),
        ...(argv.context ? { context: argv.context } : {}),
        env: out.env,
        cwd: out.cwd,
      });
      let folder: string | undefined;
      if (evidenceDir) {
        const m = meta('diff-cluster', `pi-image diff --cluster${argv.manifests ? ` --manifests ${argv.manifests}` : ''}`);
        folder = await writeDiffEvidence(evidenceDir, m.name, now, { patch: c.patch, summaryMd: clusterSummaryMarkdown(m, c), summaryJson: { ...m, cluster: c } }, []);
      }
      if (argv.output === 'json') printJson(out, { cluster: c, ...(folder ? { evidence: displayPath(folder, out.cwd) } : {}) });
      else {
        out.out(formatClusterDiff(c));
        if (folder) out.out(`evidence: ${displayPath(folder, out.cwd)}/\n`);
      }
      if (c.status === 'changed') throw new ChecksFailedError('the cluster differs from the manifests', { reported: true });
      return;
    }

    const buildDir = isAbsolute(argv['build-dir']) ? argv['build-dir'] : join(out.cwd, argv['build-dir']);
    const result = await diffNodes({ inventory, nodes: argv.node ? [argv.node] : [], buildDir, env: out.env, cwd: out.cwd, now });
    const safe = (text: string) => redact(text, result.secretValues);
    let folder: string | undefined;
    if (evidenceDir) {
      const m = meta(argv.all ? 'diff-all' : `diff-${argv.node}`, argv.all ? 'pi-image diff --all' : `pi-image diff ${argv.node}`, result.secretsVersion);
      folder = await writeDiffEvidence(
        evidenceDir,
        m.name,
        now,
        { patch: combinedPatch(result.nodes), summaryMd: nodesSummaryMarkdown(m, result.nodes), summaryJson: { ...m, nodes: result.nodes.map(countNode) } },
        result.secretValues,
      );
    }
    if (argv.output === 'json') {
      const summary = {
        changed: result.nodes.filter((n) => n.status === 'changed').length,
        unchanged: result.nodes.filter((n) => n.status === 'unchanged').length,
        neverBuilt: result.nodes.filter((n) => n.status === 'never-built').length,
      };
      out.out(safe(`${JSON.stringify({ nodes: result.nodes, summary, ...(folder ? { evidence: displayPath(folder, out.cwd) } : {}) }, null, 2)}\n`));
    } else {
      for (const n of result.nodes) out.out(safe(formatNodeDiff(n)));
      out.out(`${nodesVerdict(result.nodes)}\n`);
      if (folder) out.out(`evidence: ${displayPath(folder, out.cwd)}/\n`);
    }
    if (result.nodes.some((n) => n.status !== 'unchanged')) throw new ChecksFailedError('reflashing would change nodes', { reported: true });
  },
};
