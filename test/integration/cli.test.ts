import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitForLine } from '../support/plannt-process';

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
drain_seconds: 0
routes: [{ id: r, service: svc, price_sats: 3, path: { prefix: /paid } }]
`;

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

/** Runs `plannt serve` on a config that must not start; returns its exit code and stderr. */
function refusedStart(body: string, env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string } {
  const file = writeConfig(`refused-${randomBytes(4).toString('hex')}.yaml`, body);
  const run = spawnSync(process.execPath, [CLI, 'serve', '--config', file], {
    encoding: 'utf8',
    timeout: 10_000,
    // A config that wrongly starts a server must fail the test, not hang it in a graceful shutdown.
    killSignal: 'SIGKILL',
    env: { ...process.env, ...env },
  });
  return { status: run.status, stderr: run.stderr };
}

/** No run of 12 hex characters of the secret appears in the text. */
function expectNoPieceOf(secret: string, text: string): void {
  for (let i = 0; i + 12 <= secret.length; i++) expect(text).not.toContain(secret.slice(i, i + 12));
}

describe('config errors never echo a secret', () => {
  const secret = randomBytes(32).toString('hex');

  test('a YAML syntax error on the root key line names the line and column, not the text', () => {
    const body = validConfig.replace(/key: "[0-9a-f]+"/, `key: "${secret}" x`);
    const { status, stderr } = refusedStart(body);
    expect(status).toBe(78);
    expect(stderr).toMatch(/not valid YAML.*line 3, column \d+/);
    expectNoPieceOf(secret, stderr);
  });

  test('a duplicate key in the YAML is reported without quoting the file', () => {
    const body = `${validConfig}\nroot_keys: [{ id: 7, key: "${secret}" }]\n`;
    const { status, stderr } = refusedStart(body);
    expect(status).toBe(78);
    expectNoPieceOf(secret, stderr);
  });

  test('a secret pasted into an enumerated field is not echoed back', () => {
    const { status, stderr } = refusedStart(`${validConfig}log_level: "${secret}"\n`);
    expect(status).toBe(78);
    expect(stderr).toContain('log_level');
    expectNoPieceOf(secret, stderr);
  });

  test('a secret used as a field name is not echoed back', () => {
    const { status, stderr } = refusedStart(`${validConfig}"${secret}": 1\n`);
    expect(status).toBe(78);
    expectNoPieceOf(secret, stderr);
  });
});

describe('config errors exit 78 and name the field, without a stack trace', () => {
  test.each([
    [
      'a port out of range',
      validConfig.replace('127.0.0.1:0", admin', '127.0.0.1:99999", admin'),
      'listen.grpc',
    ],
    [
      'two listeners on one port',
      validConfig.replace(
        /admin: "127\.0\.0\.1:0", http: "127\.0\.0\.1:0"/,
        'admin: "127.0.0.1:19633", http: "127.0.0.1:19633"',
      ),
      'listen',
    ],
    [
      'an all-zero root key',
      validConfig.replace(/key: "[0-9a-f]+"/, `key: "${'00'.repeat(32)}"`),
      'root_keys.0.key',
    ],
    [
      'a root key of one repeated byte',
      validConfig.replace(/key: "[0-9a-f]+"/, `key: "${'ab'.repeat(32)}"`),
      'root_keys.0.key',
    ],
  ])('%s', (_name, body, field) => {
    const { status, stderr } = refusedStart(body);
    expect(stderr).toContain(field);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(status).toBe(78);
  });

  test('a YAML file that is a scalar, with PLANNT_ROOT_KEYS set', () => {
    const { status, stderr } = refusedStart('just a string\n', {
      PLANNT_ROOT_KEYS: `1:${randomBytes(32).toString('hex')}`,
    });
    expect(stderr).toContain('(root)');
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(status).toBe(78);
  });

  test('a port already taken by another process is named', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const { status, stderr } = refusedStart(
        validConfig.replace(/http: "127\.0\.0\.1:0"/, `http: "127.0.0.1:${port}"`),
      );
      expect(stderr).toContain('listen.http');
      expect(stderr).not.toMatch(/\n\s+at /);
      expect(status).toBe(78);
    } finally {
      taken.close();
    }
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
