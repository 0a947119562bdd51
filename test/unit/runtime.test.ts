/**
 * The supported runtime is Node.js 24 LTS: package.json's engines, and the Node `npm test` runs jest with
 * (scripts/node24.sh, which installs the pinned registry build when the machine's `node` is another version).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const REPO = path.resolve(__dirname, '../..');
const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
  engines: { node: string };
};
const major = Number(process.versions.node.split('.')[0]);

describe('the runtime', () => {
  it('is one that package.json engines accepts: Node 24 or later', () => {
    expect(pkg.engines.node).toBe('>=24');
    if (major < 24)
      throw new Error(`jest runs on Node ${process.version}: run it through npm test or scripts/node24.sh`);
  });

  it('is Node 24 under npm test, whatever node the machine has', () => {
    if (process.env.npm_lifecycle_event === 'test') expect(major).toBe(24);
  });

  it('scripts/node24.sh runs its command with a Node 24 first on PATH', () => {
    const version = execFileSync(path.join(REPO, 'scripts/node24.sh'), ['node', '-p', 'process.version'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(version.trim()).toMatch(/^v24\./);
  });
});
