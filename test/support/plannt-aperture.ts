/**
 * Runs bin/plannt-aperture (test/interop/aperture: aperture v0.5.0's own Go code behind a JSON CLI): one
 * command, a JSON request on stdin, the JSON answer. Built by test/interop/aperture/build.sh (`npm run tools`).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../regtest/daemons';

export const PLANNT_APERTURE =
  process.env.PLANNT_APERTURE_BIN ?? path.join(REPO_ROOT, 'bin', 'plannt-aperture');

export function aperture<T = Record<string, unknown>>(
  command: 'set-header' | 'from-header' | 'verify' | 'grpc' | 'fetch',
  input: object,
  timeoutMs = 60_000,
): Promise<T> {
  if (!existsSync(PLANNT_APERTURE)) {
    throw new Error(
      `${PLANNT_APERTURE} is missing: build it with test/interop/aperture/build.sh (needs Go >= 1.26; cached after the first build)`,
    );
  }
  return new Promise((resolve, reject) => {
    const child = execFile(PLANNT_APERTURE, [command], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`plannt-aperture ${command} failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as T);
    });
    child.stdin?.end(JSON.stringify(input));
  });
}
