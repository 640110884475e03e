/**
 * The alerting config with the real tools: amtool (check-config, routes test), promtool (check
 * rules, test rules) and a real prometheus-alertmanager on 127.0.0.1 delivering a synthetic alert to
 * a local webhook server standing in for the pager/chat receivers.
 * Debian packages: prometheus-alertmanager (amtool, prometheus-alertmanager), prometheus (promtool).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';

const run = promisify(execFile);
const ALERTING = join(import.meta.dirname, '..', '..', 'manifests', 'alerting');
const AM_CONFIG = join(ALERTING, 'alertmanager.yml');

async function routeFor(...labels: string[]): Promise<string> {
  const { stdout } = await run('amtool', ['config', 'routes', 'test', `--config.file=${AM_CONFIG}`, ...labels]);
  return stdout.trim();
}

describe('alerting config checked by amtool and promtool', () => {
  it('amtool check-config accepts alertmanager.yml', async () => {
    const { stdout } = await run('amtool', ['check-config', AM_CONFIG]);
    expect(stdout).toContain('SUCCESS');
    expect(stdout).toMatch(/\d+ receivers/);
  });

  it.each([
    [['severity=critical'], 'pager'],
    [['severity=warning'], 'chat'],
    [['alertname=Watchdog', 'severity=none'], 'watchdog'],
    [['alertname=PiNodeNotReady', 'severity=critical', 'node=pi-cluster-3'], 'pager'],
    [['alertname=PiNodeHot', 'severity=warning'], 'chat'],
  ])('amtool routes %j to %s', async (labels, receiver) => {
    expect(await routeFor(...labels)).toBe(receiver);
  });

  it('the receivers in the routes exist with webhook placeholders in the ops namespace', () => {
    const cfg = parse(readFileSync(AM_CONFIG, 'utf8')) as { receivers: { name: string; webhook_configs?: { url: string }[] }[] };
    for (const name of ['pager', 'chat', 'watchdog']) {
      const r = cfg.receivers.find((x) => x.name === name);
      expect(r?.webhook_configs?.[0]?.url, name).toMatch(/^http:\/\/[a-z-]+\.ops\.svc\.cluster\.local:\d+\//);
    }
  });

  it('promtool check rules accepts rules.yml', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', join(ALERTING, 'rules.yml')]).catch(
      (e: { stdout?: string; stderr?: string }) => {
        throw new Error(`promtool failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      },
    );
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('promtool test rules passes the rule unit tests', async () => {
    const { stdout } = await run('promtool', ['test', 'rules', 'rules.test.yml'], { cwd: ALERTING }).catch(
      (e: { stdout?: string; stderr?: string }) => {
        throw new Error(`promtool test rules failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      },
    );
    expect(stdout).toContain('SUCCESS');
  });
});

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Delivery {
  path: string;
  body: { receiver: string; status: string; alerts: { labels: Record<string, string> }[] };
}

describe('a real Alertmanager routes a critical alert to the pager webhook', () => {
  let dir: string;
  let webhook: Server;
  let am: ChildProcess | undefined;
  let amUrl: string;
  let amLog = '';
  const deliveries: Delivery[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pi-image-am-'));
    webhook = createServer((req, res) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString()));
      req.on('end', () => {
        deliveries.push({ path: req.url ?? '', body: JSON.parse(data) as Delivery['body'] });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', () => r()));
    const hookPort = (webhook.address() as AddressInfo).port;

    // test copy: receivers → the local webhook (/<receiver>), short waits
    const cfg = parse(readFileSync(AM_CONFIG, 'utf8')) as {
      route: { group_wait: string; group_interval: string; routes: { group_wait?: string; group_interval?: string }[] };
      receivers: { name: string; webhook_configs?: { url: string }[] }[];
    };
    cfg.route.group_wait = '100ms';
    cfg.route.group_interval = '1s';
    for (const r of cfg.route.routes) {
      r.group_wait = '100ms';
      r.group_interval = '1s';
    }
    for (const r of cfg.receivers) for (const w of r.webhook_configs ?? []) w.url = `http://127.0.0.1:${hookPort}/${r.name}`;
    const cfgPath = join(dir, 'alertmanager.yml');
    writeFileSync(cfgPath, stringify(cfg));
    await run('amtool', ['check-config', cfgPath]);

    const port = await freePort();
    amUrl = `http://127.0.0.1:${port}`;
    am = spawn(
      'prometheus-alertmanager',
      [`--config.file=${cfgPath}`, `--storage.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=info'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    am.stdout?.on('data', (c: Buffer) => (amLog += c.toString()));
    am.stderr?.on('data', (c: Buffer) => (amLog += c.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await fetch(`${amUrl}/-/ready`).then((r) => r.ok).catch(() => false);
      if (ok) break;
      if (Date.now() > deadline || am.exitCode !== null) throw new Error(`alertmanager did not become ready:\n${amLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    if (am && am.exitCode === null) {
      const exited = new Promise((r) => am!.once('exit', r));
      am.kill('SIGTERM');
      await exited;
    }
    await new Promise<void>((r) => (webhook ? webhook.close(() => r()) : r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function post(labels: Record<string, string>): Promise<void> {
    const res = await fetch(`${amUrl}/api/v2/alerts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ labels, annotations: { summary: 'synthetic test alert' }, startsAt: new Date().toISOString() }]),
    });
    expect(res.status).toBe(200);
  }

  async function waitFor(pred: (d: Delivery) => boolean, ms = 15_000): Promise<Delivery> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = deliveries.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no matching webhook delivery within ${ms} ms; got ${JSON.stringify(deliveries.map((d) => d.path))}\n${amLog}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('severity=critical reaches /pager and not /chat', async () => {
    await post({ alertname: 'PiNodeNotReady', severity: 'critical', node: 'pi-cluster-3' });
    const d = await waitFor((x) => x.body.alerts.some((a) => a.labels['alertname'] === 'PiNodeNotReady'));
    expect(d.path).toBe('/pager');
    expect(d.body.receiver).toBe('pager');
    expect(d.body.status).toBe('firing');
    expect(d.body.alerts[0]?.labels).toMatchObject({ severity: 'critical', node: 'pi-cluster-3' });
    expect(deliveries.filter((x) => x.path === '/chat' && x.body.alerts.some((a) => a.labels['alertname'] === 'PiNodeNotReady'))).toEqual([]);
  });

  it('severity=warning reaches /chat and Watchdog reaches /watchdog', async () => {
    await post({ alertname: 'PiNodeHot', severity: 'warning', instance: '10.0.0.13:9100' });
    await post({ alertname: 'Watchdog', severity: 'none' });
    expect((await waitFor((x) => x.body.alerts.some((a) => a.labels['alertname'] === 'PiNodeHot'))).path).toBe('/chat');
    expect((await waitFor((x) => x.body.alerts.some((a) => a.labels['alertname'] === 'Watchdog'))).path).toBe('/watchdog');
  });
});
