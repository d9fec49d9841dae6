// A real Prometheus server (the pinned `prometheus` tool, 3.16.0) for tests, on 127.0.0.1: it loads the
// project's own rule files from alerts/ and scrapes the given targets, each labelled with the namespace
// it stands for (as the Prometheus Operator labels a ServiceMonitor's targets). Only the cadence is a
// test setting: the scrape interval, and every rule group's evaluation interval, which the rule files
// fix at 30 s to 5 m, rewritten in copies of the files. Expressions, labels and thresholds are the
// files' own, byte for byte.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { ALERTS_DIR, ruleFiles } from '../../scripts/lib/domain/rules.ts';

export interface ScrapeTarget {
  /** host:port of the /metrics endpoint. */
  hostPort: string;
  namespace: string;
  /** Scrape job; our rules select the API by job=~".*conduit.*-api". */
  job?: string;
}

export interface PrometheusServer {
  url: string;
  dir: string;
  /** Server log (stderr), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Copies of alerts/*.rules.yaml with every group's `interval:` set to `every` (nothing else changes). */
export function rulesEvaluatedEvery(every: string, to: string): string[] {
  fs.mkdirSync(to, { recursive: true });
  return ruleFiles(ALERTS_DIR).map((f) => {
    const text = fs.readFileSync(f, 'utf8').replace(/^(\s+interval:\s*).*$/gm, `$1${every}`);
    const out = path.join(to, path.basename(f));
    fs.writeFileSync(out, text);
    return out;
  });
}

async function untilReady(url: string, child: ChildProcess, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}:\n${log().slice(-2000)}`);
    const ok = await fetch(`${url}/-/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`prometheus did not become ready within ${timeoutMs / 1000}s:\n${log().slice(-2000)}`);
}

export async function startPrometheus(options: { targets: ScrapeTarget[]; scrapeInterval?: string; evaluationInterval?: string }): Promise<PrometheusServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-prometheus-'));
  const every = options.evaluationInterval ?? '1s';
  const rules = rulesEvaluatedEvery(every, path.join(dir, 'rules'));
  const config = {
    global: { scrape_interval: options.scrapeInterval ?? '1s', evaluation_interval: every },
    rule_files: rules,
    scrape_configs: options.targets.map((t) => ({
      job_name: t.job ?? `${t.namespace}/conduit-api`,
      static_configs: [{ targets: [t.hostPort], labels: { namespace: t.namespace } }],
    })),
  };
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), toYaml(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    await tool('prometheus'),
    [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const log = () => stderr;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await untilReady(url, child, log, 60_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, dir, log, stop };
}

/** One instant query, for tests that wait on a series. */
export async function instantQuery(url: string, expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const r = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  const body = (await r.json()) as { data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  return body.data?.result ?? [];
}
