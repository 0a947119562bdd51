import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

describe('the published client entry point', () => {
  test('`plannt/client` resolves to the compiled client with its type declarations', () => {
    // Runs in a plain Node process, as an agent builder's code would import it; `npm test` builds first.
    const root = path.join(__dirname, '../..');
    const out = execFileSync(
      process.execPath,
      ['-e', "const c = require('plannt/client'); process.stdout.write(typeof c.l402Fetch)"],
      { cwd: root, encoding: 'utf8' },
    );
    expect(out).toBe('function');
    expect(require.resolve('plannt/client', { paths: [root] })).toBe(
      path.join(root, 'dist/src/client/index.js'),
    );
    expect(existsSync(path.join(root, 'dist/src/client/index.d.ts'))).toBe(true);
  });
});
