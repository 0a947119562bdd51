/**
 * deploy/tools/ensure-system-tools.sh, which `npm test` runs (through `npm run tools`) so that a bare Debian
 * machine needs nothing but README's two commands: it installs caddy, prometheus and openssl when missing
 * and running as root, and otherwise names them. Run here on a PATH of stand-ins, so nothing is installed.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const SCRIPT = path.resolve(__dirname, '../../deploy/tools/ensure-system-tools.sh');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'plannt-system-tools-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A PATH holding only stand-ins for `programs` (and `id`, printing `uid`); apt-get logs its arguments. */
function run(uid: number, programs: string[]) {
  const stub = (name: string, body: string) => {
    writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(dir, name), 0o755);
  };
  stub('id', `echo ${uid}`);
  for (const p of programs) stub(p, 'exit 0');
  stub('apt-get', `echo "$@" >> ${dir}/apt.log`);
  const result = spawnSync('/bin/bash', [SCRIPT], { encoding: 'utf8', env: { PATH: dir } });
  let apt = '';
  try {
    apt = readFileSync(path.join(dir, 'apt.log'), 'utf8');
  } catch {}
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, apt };
}

describe('ensure-system-tools.sh', () => {
  it('does nothing when caddy, prometheus, promtool and openssl are there', () => {
    const result = run(1000, ['caddy', 'prometheus', 'promtool', 'openssl']);
    expect(result).toMatchObject({ status: 0, apt: '' });
  });

  it('installs what is missing from Debian packages when run as root', () => {
    const result = run(0, ['openssl']);
    expect(result.status).toBe(0);
    expect(result.apt).toContain('update -qq');
    expect(result.apt).toContain('install -y -qq --no-install-recommends caddy prometheus');
  });

  it('names the packages to install, and fails, when not root', () => {
    const result = run(1000, ['caddy']);
    expect(result.status).toBe(1);
    expect(result.apt).toBe('');
    expect(result.stderr).toContain('the tests need prometheus openssl');
    expect(result.stderr).toContain('apt-get install --no-install-recommends prometheus openssl');
  });
});
