// scratch experiment: CPU-bound overload with the Go generator (not committed)
const { spawn, execFileSync } = require('child_process');
const fs = require('fs'); const os = require('os'); const path = require('path'); const crypto = require('crypto');
const Redis = require('ioredis');
const { keyring } = require('/work/main/dist/src/l402/keys.js');
const { paidToken } = require('/work/main/dist/test/support/paid-token.js');
const { checkRequest } = require('/work/main/dist/test/support/envoy-client.js');
const { AuthorizationService } = require('/work/main/dist/src/envoy/protos.js');
const { writeRequestFile, runLoad } = require('/work/main/dist/bench/authzbench.js');
const RATE_X = Number(process.env.X || 1.5), DEADLINE = Number(process.env.DL || 200), SECONDS = Number(process.env.S || 10);
const root = crypto.randomBytes(32); const keys = keyring([{ id: 3, secret: root }], 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'exp-'));
const prefix = `exp:${crypto.randomBytes(3).toString('hex')}:`;
fs.writeFileSync(`${dir}/c.yaml`, `listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0", http: "127.0.0.1:0" }
root_keys: [{ id: 3, key: "${root.toString('hex')}" }]
current_key_id: 3
backend: { kind: dev }
workers: 1
spent_set: { kind: redis, redis: { url: "redis://127.0.0.1:6379", key_prefix: "${prefix}" } }
routes:
  - { id: forecast, service: weather, price_sats: 10, path: { prefix: /v1/forecast } }
drain_seconds: 0
log_level: ${process.env.LOG || 'info'}
`);
const mint = (n) => { const out = []; for (let i = 0; i < n; i++) { const { authorization } = paidToken(keys); out.push(AuthorizationService.Check.requestSerialize(checkRequest({ method: 'GET', host: 'api.example.com', path: '/v1/forecast?city=porto', headers: { authorization } }))); } return out; };
(async () => {
  const proc = spawn('taskset', ['-c', '0', process.execPath, '/work/main/dist/src/cli.js', 'serve', '--config', `${dir}/c.yaml`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((res) => { let out = ''; const on = (c) => { out += c; const l = out.split('\n').find((x) => x.includes('plannt started')); if (l) { proc.stdout.off('data', on); proc.stdout.resume(); res(JSON.parse(l).grpc_port); } }; proc.stdout.on('data', on); });
  const target = `127.0.0.1:${port}`;
  const go = (o) => runLoad({ target, conns: 1, concurrency: 64, deadlineMs: DEADLINE, ...o });
  const cal = `${dir}/cal.bin`; writeRequestFile(cal, mint(8000));
  const c = await go({ requestsFile: cal, calls: 8000 });
  console.log('calibration', c.checksPerSecond.toFixed(0), '/s', JSON.stringify(c.byHttpStatus), JSON.stringify(c.grpcErrors));
  const rate = Math.round(c.checksPerSecond * RATE_X); const n = rate * SECONDS;
  const f = `${dir}/o.bin`; writeRequestFile(f, mint(n));
  const redis = new Redis(); const before = (await redis.keys(`${prefix}*`)).length;
  const r = await go({ requestsFile: f, calls: n, rate });
  const after = (await redis.keys(`${prefix}*`)).length;
  console.log(`overload @${rate}/s x${RATE_X} deadline ${DEADLINE}:`, JSON.stringify(r.byHttpStatus), 'grpc', JSON.stringify(r.grpcErrors), 'allowed', r.allowed, 'spent', after - before, 'p99', (r.latencyUs.p99/1000).toFixed(1), 'ms', 'maxInFlight', r.maxInFlight);
  proc.kill('SIGKILL'); redis.disconnect();
})();
