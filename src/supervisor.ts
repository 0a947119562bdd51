/**
 * The primary process when `workers` > 1. Workers (node:cluster) share the gRPC and HTTP ports: the primary
 * accepts each connection and hands it to the next worker in turn. The primary checks nothing itself; it
 * serves the admin port with every worker's metrics aggregated (pod-metrics.ts), replaces
 * a worker that dies (with backoff), and passes SIGTERM and SIGHUP on, so drain and reload work as with one
 * process: readiness fails at once, then each worker drains and exits.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config';
import { ConfigError, splitHostPort } from './config';
import type { Logger } from './logger';
import { podMetrics } from './pod-metrics';
import { type AdminServer, startAdminServer } from './server/admin-http';
import { isWorkerReport, type WorkerReport } from './worker';

export interface Supervisor {
  adminPort: number;
  /** Drains every worker; resolves with 0 when all of them exited cleanly. */
  stop(): Promise<number>;
}

/** Restart delays after a crash: doubling from the first, reset once a replacement has served this long. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
const HEALTHY_AFTER_MS = 30_000;

export async function superviseWorkers(config: Config, count: number, logger: Logger): Promise<Supervisor> {
  const reports = new Map<number, WorkerReport>();
  const everyWorker = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
  const metrics = podMetrics(everyWorker);
  let stopping = false;
  let crashes = 0;
  let lastCrash = 0;

  cluster.on('message', (worker, message: unknown) => {
    if (isWorkerReport(message)) reports.set(worker.id, message);
    metrics.received(worker, message);
  });

  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.on('exit', (code, signal) => {
      const served = reports.delete(worker.id);
      metrics.exited(worker);
      if (stopping || !started) return;
      const now = Date.now();
      if (now - lastCrash > HEALTHY_AFTER_MS) crashes = 0;
      lastCrash = now;
      const delay = Math.min(RESTART_MIN_MS * 2 ** crashes++, RESTART_MAX_MS);
      logger.error(
        { worker: worker.id, pid: worker.process.pid, code, signal, served, restart_in_ms: delay },
        'worker exited; replacing it',
      );
      setTimeout(() => {
        if (!stopping) fork();
      }, delay);
    });
    return worker;
  };

  // Start every worker before the admin port opens: a worker that cannot start (a port taken, a bad
  // certificate) is a configuration problem, reported with its exit code, not a crash loop.
  let started = false;
  const workers = Array.from({ length: count }, fork);
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (workers.every((w) => reports.has(w.id))) {
        cluster.off('message', check);
        resolve();
      }
    };
    cluster.on('message', check);
    for (const w of workers) {
      w.once('exit', (code) => {
        if (started) return;
        cluster.off('message', check);
        for (const other of workers) other.process.kill('SIGKILL');
        reject(
          code === 78
            ? new ConfigError('a worker refused the configuration (its log line above says why)')
            : new Error(`worker ${w.id} exited with code ${code} before serving`),
        );
      });
    }
  });
  started = true;

  let draining = false;
  const [adminHost, adminPort] = splitHostPort(config.listen.admin);
  let admin: AdminServer;
  try {
    admin = await startAdminServer(adminHost, adminPort, {
      metrics,
      readiness: { status: () => dependencies([...reports.values()]) },
      isDraining: () => draining,
      isServing: () => reports.size > 0,
    });
  } catch (err) {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
    throw new ConfigError(`listen.admin: cannot listen on ${config.listen.admin}: ${(err as Error).message}`);
  }
  const first = [...reports.values()][0];
  logger.info(
    {
      grpc_port: first?.grpcPort,
      http_port: first?.httpPort,
      admin_port: admin.port,
      workers: count,
      dependencies: dependencies([...reports.values()]),
    },
    'plannt started',
  );

  const onHangup = () => {
    for (const w of everyWorker()) w.process.kill('SIGHUP');
  };
  process.on('SIGHUP', onHangup);

  return {
    adminPort: admin.port,
    async stop() {
      stopping = true;
      draining = true;
      process.off('SIGHUP', onHangup);
      const exits = everyWorker().map(
        (w) =>
          new Promise<number>((resolve) => {
            if (w.process.exitCode !== null) return resolve(w.process.exitCode);
            w.once('exit', (code) => resolve(code ?? 1));
            w.process.kill('SIGTERM');
          }),
      );
      const codes = await Promise.all(exits);
      await admin.close();
      return codes.every((c) => c === 0) ? 0 : 1;
    },
  };
}

/** A dependency is up when every serving worker reaches it. */
function dependencies(reports: WorkerReport[]): Record<string, boolean> {
  const merged: Record<string, boolean> = {};
  for (const r of reports)
    for (const [name, up] of Object.entries(r.dependencies)) merged[name] = (merged[name] ?? true) && up;
  return merged;
}
