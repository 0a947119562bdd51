import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// These run the compiled CLI, as an operator would; `npm test` builds before jest runs.
const CLI = path.join(__dirname, '../../dist/src/cli.js');
const dir = mkdtempSync(path.join(tmpdir(), 'plannt-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, body);
  return file;
}

const validConfig = `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
root_keys: [{ id: 7, key: "${randomBytes(32).toString('hex')}" }]
current_key_id: 7
backend: { kind: dev }
spent_set: { kind: memory }
routes: [{ id: r, service: svc, price_sats: 3, path: { prefix: /paid } }]
`;

function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} in: ${out}`)), 10_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
  });
}

describe('plannt serve', () => {
  test('stops startup with exit code 78 and names the bad field', () => {
    const file = writeConfig('bad.yaml', validConfig.replace(/key: "[0-9a-f]+"/, 'key: "abcd"'));
    const run = spawnSync(process.execPath, [CLI, 'serve', '--config', file], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(run.status).toBe(78);
    expect(run.stderr).toContain('root_keys.0.key');
    expect(run.stderr).toContain('at least 32 bytes');
  });

  test('refuses the dev backend when NODE_ENV=production', () => {
    const file = writeConfig('dev.yaml', validConfig);
    const run = spawnSync(process.execPath, [CLI, 'serve', '--config', file], {
      encoding: 'utf8',
      timeout: 10_000,
      env: { ...process.env, NODE_ENV: 'production' },
    });
    expect(run.status).toBe(78);
    expect(run.stderr).toContain('NODE_ENV=production');
  });

  test('serves, warns loudly about the dev backend, and exits cleanly on SIGTERM', async () => {
    const file = writeConfig('ok.yaml', validConfig);
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const warning = waitForLine(child, /DEV INVOICE BACKEND/);
    const started = JSON.parse(await waitForLine(child, /plannt started/)) as { admin_port: number };
    await warning;
    const ready = await fetch(`http://127.0.0.1:${started.admin_port}/readyz`);
    expect(ready.status).toBe(200);

    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const stopped = waitForLine(child, /plannt stopped/);
    child.kill('SIGTERM');
    await stopped;
    expect(await exited).toBe(0);
  });
});

describe('plannt token inspect', () => {
  test('decodes a token minted by a running server', async () => {
    const file = writeConfig('inspect.yaml', validConfig);
    const child = spawn(process.execPath, [CLI, 'serve', '--config', file], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const started = JSON.parse(await waitForLine(child, /plannt started/)) as { grpc_port: number };
      const check = spawnSync(
        process.execPath,
        [CLI, 'check', '--server', `127.0.0.1:${started.grpc_port}`, 'http://api.test/paid/thing'],
        { encoding: 'utf8', timeout: 10_000 },
      );
      expect(check.stdout).toMatch(/^DENY PaymentRequired/);
      const body = JSON.parse(check.stdout.slice(check.stdout.indexOf('{'))) as {
        macaroon: string;
        payment_hash: string;
      };

      const inspect = spawnSync(process.execPath, [CLI, 'token', 'inspect', body.macaroon], {
        encoding: 'utf8',
      });
      const token = JSON.parse(inspect.stdout) as Record<string, unknown>;
      expect(token).toMatchObject({
        version: 0,
        key_id: 7,
        payment_hash: body.payment_hash,
        location: 'plannt',
      });
      expect(token.caveats).toEqual([
        'services=svc:0',
        expect.stringMatching(/^svc_valid_until=\d+$/),
        'plannt_route=r',
        'plannt_price_sats=3',
      ]);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
