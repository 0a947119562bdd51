/**
 * h2load (nghttp2's HTTP/2 load generator, Debian's `nghttp2-client`) as a gRPC client that sends one body
 * over and over. It costs ~10 µs of CPU a call, a fifth of the Go generator's, so on a 2-vCPU machine it
 * leaves a second core to a second worker. One body means one token: a bundle or a pass, not single use.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { CHECK_PATH } from './check-codec';

export function assertH2load(): void {
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('h2load is missing: apt-get install nghttp2-client');
  }
}

/** One gRPC message (uncompressed flag, big-endian length, the message) in a file for `h2load -d`. */
export function writeGrpcBody(file: string, message: Buffer): void {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  writeFileSync(file, frame);
}

export interface H2loadOptions {
  port: number;
  bodyFile: string;
  calls: number;
  connections: number;
  streamsPerConnection: number;
  /** Open loop: requests per second on each connection (h2load's `--rps`); closed loop when absent. */
  ratePerConnection?: number;
  /** The request's path; Envoy's Check method when absent. */
  path?: string;
}

export interface H2loadReport {
  callsPerSecond: number;
  /** Calls answered with HTTP 200 (a gRPC answer; whether it allowed is for the server's metrics to say). */
  ok: number;
  /** h2load's own CPU (user + system), µs a call. */
  cpuUsPerCall: number;
}

export function runH2load(o: H2loadOptions): Promise<H2loadReport> {
  // bash's `times` prints the CPU its children used: h2load's own, exactly.
  const script = `h2load "$@" && times`;
  const args = [
    ...['-n', String(o.calls), '-c', String(o.connections), '-m', String(o.streamsPerConnection), '-t', '1'],
    ...(o.ratePerConnection === undefined ? [] : ['--rps', String(o.ratePerConnection)]),
    ...['-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', o.bodyFile],
    `http://127.0.0.1:${o.port}${o.path ?? CHECK_PATH}`,
  ];
  return new Promise((resolve, reject) =>
    execFile('bash', ['-c', script, 'h2load', ...args], { maxBuffer: 1 << 22 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`h2load: ${stderr || err.message}`));
      const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(stdout);
      const ok = /status codes: (\d+) 2xx/.exec(stdout);
      // `times` prints the shell's user/system line, then its children's: `0m0.540s 0m0.257s`.
      const children = stdout.trim().split('\n').at(-1) ?? '';
      const seconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce(
        (sum, [, m, s]) => sum + Number(m) * 60 + Number(s),
        0,
      );
      if (!rate || !ok) return reject(new Error(`h2load printed no result:\n${stdout}`));
      resolve({
        callsPerSecond: Number(rate[1]),
        ok: Number(ok[1]),
        cpuUsPerCall: (seconds / o.calls) * 1e6,
      });
    }),
  );
}
