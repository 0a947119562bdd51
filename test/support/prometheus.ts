/**
 * A real Prometheus (Debian's `prometheus` package) of the test's own: its own config, storage directory
 * and a free loopback port, so it never meets a Prometheus the package may have started on :9090. Stopped
 * by PID. Queried through the HTTP API.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './redis-procs';

export const PROMETHEUS = process.env.PROMETHEUS_BIN ?? 'prometheus';
export const PROMTOOL = process.env.PROMTOOL_BIN ?? 'promtool';
const INSTALL_HINT =
  'install it with: apt-get update && apt-get install -y prometheus (which ships promtool)';

/** Throws, naming the install command, when the binary does not run. */
export function requireTool(bin: string): void {
  const result = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (result.status !== 0) {
    throw new Error(
      `${bin} is required and did not run (${result.error?.message ?? result.stderr}); ${INSTALL_HINT}`,
    );
  }
}

export interface ScrapeJob {
  job: string;
  /** host:port of /metrics */
  target: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  url: string;
  /** Instant query; rejects on a PromQL error. */
  /** An instant query, at `time` (Unix seconds) when given, else now. */
  query(expr: string, time?: number): Promise<Sample[]>;
  /** GET an API path (e.g. /api/v1/rules), the parsed `data`. */
  api<T>(pathAndQuery: string): Promise<T>;
  log(): string;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  jobs: ScrapeJob[];
  /** Rule file contents to load (`rule_files`). */
  rules?: string;
  intervalSeconds?: number;
}

export async function startPrometheus({
  jobs,
  rules,
  intervalSeconds = 1,
}: PrometheusOptions): Promise<Prometheus> {
  requireTool(PROMETHEUS);
  const dir = mkdtempSync(path.join(tmpdir(), 'plannt-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  const rulesFile = path.join(dir, 'rules.yml');
  if (rules) writeFileSync(rulesFile, rules);
  // JSON is YAML: no quoting surprises.
  const config = {
    global: { scrape_interval: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    rule_files: rules ? [rulesFile] : [],
    scrape_configs: jobs.map(({ job, target }) => ({
      job_name: job,
      scrape_timeout: `${intervalSeconds}s`,
      // The namespace label the Prometheus operator adds to every Kubernetes target.
      static_configs: [{ targets: [target], labels: { namespace: 'payments' } }],
    })),
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const port = await freePort();
  let output = '';
  const child: ChildProcess = spawn(
    PROMETHEUS,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const url = `http://127.0.0.1:${port}`;

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const res = await fetch(url + pathAndQuery, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${pathAndQuery}: ${body.error ?? res.status}`);
    return body.data;
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    api,
    async query(expr, time) {
      const at = time === undefined ? '' : `&time=${time}`;
      const data = await api<{ resultType: string; result: Sample[] | [number, string] }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}${at}`,
      );
      // A scalar is a single value; treat it as one sample without labels.
      if (data.resultType === 'scalar') return [{ metric: {}, value: data.result as [number, string] }];
      return data.result as Sample[];
    },
    log: () => output,
    stop,
  };
}
