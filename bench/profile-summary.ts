/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time by package and by function, and inclusive time
 * of the functions that matter on the check path.
 *
 *   node dist/bench/profile-summary.js PROFILE.cpuprofile [--top 30] [--checks N]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: {
    top: { type: 'string', default: '30' },
    /** Checks the profiled process served: adds a µs-per-check column. */
    checks: { type: 'string' },
    /** Comma-separated function names whose inclusive time to report. */
    functions: {
      type: 'string',
      default:
        'Check,check,decide,fromCheckRequest,toCheckResponse,readCheckRequest,encodeCheckResponse,render,' +
        'parseAuthorization,verifyCredential,' +
        'decodeBase64,hasValidSignature,macaroonRootKey,checkCaveats,spend,withTimeout,recordDecision,info,' +
        'sendCommand,deserialize,serializeMessage,sendUnaryMessage',
    },
  },
  allowPositionals: true,
});
const file = positionals[0];
if (!file) {
  process.stderr.write(
    'usage: node dist/bench/profile-summary.js PROFILE.cpuprofile [--top N] [--checks N]\n',
  );
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Which package or part of the runtime a frame belongs to. */
function category(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(garbage collector)') return '(gc)';
    if (functionName === '(program)') return '(program: native, not attributed)';
    return `(native) ${functionName || '(anonymous)'}`;
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] ?? url;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const src = /\/dist\/(src|bench)\/(.*)\.js$/.exec(url);
  if (src) return `plannt ${src[1]}/${src[2]}`;
  return url;
}

function frameKey(frame: CallFrame): string {
  const where = frame.url
    ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, '')}:${frame.lineNumber + 1}`
    : '';
  return `${frame.functionName || '(anonymous)'} ${where}`.trim();
}

const wanted = new Set((values.functions ?? '').split(',').filter(Boolean));
const inclusiveByFunction = new Map<string, number>();
/** Self time with native leaves (writeBuffer, Hmac…) charged to the nearest JavaScript caller's package. */
const foldedByCategory = new Map<string, number>();
const selfByCategory = new Map<string, number>();
const selfByFunction = new Map<string, number>();
const inclusiveByCategory = new Map<string, number>();
let total = 0;
let idle = 0;

const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);

profile.samples.forEach((id, i) => {
  const us = profile.timeDeltas[i] ?? 0;
  const node = byId.get(id);
  if (!node) return;
  total += us;
  const cat = category(node.callFrame);
  if (cat === '(idle)') {
    idle += us;
    return;
  }
  add(selfByCategory, cat, us);
  add(selfByFunction, frameKey(node.callFrame), us);
  // Inclusive: count each category (and wanted function) once per sample, however deep it recurs.
  const seen = new Set<string>();
  let folded: string | undefined;
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const frame = byId.get(cur)?.callFrame;
    if (!frame) break;
    const c = category(frame);
    if (folded === undefined && !c.startsWith('(') && !c.startsWith('node:')) folded = c;
    if (!seen.has(c)) {
      seen.add(c);
      add(inclusiveByCategory, c, us);
    }
    if (wanted.has(frame.functionName) && !seen.has(`fn:${frame.functionName}`)) {
      seen.add(`fn:${frame.functionName}`);
      add(inclusiveByFunction, `${frame.functionName} (${category(frame)})`, us);
    }
  }
  add(foldedByCategory, folded ?? cat, us);
});

const busy = total - idle;
const checks = values.checks ? Number(values.checks) : undefined;
const fmt = (us: number) =>
  `${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%` +
  (checks ? ` ${(us / checks).toFixed(1).padStart(7)} µs/check` : '');
const print = (title: string, map: Map<string, number>, n: number) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    process.stdout.write(`  ${fmt(us)}  ${k}\n`);
  }
};

process.stdout.write(
  `${file}\n  sampled ${(total / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (percentages are of busy time)\n`,
);
print('self time by package / part', selfByCategory, top);
print(
  'self time by package, native and node:internal leaves charged to the nearest package or plannt caller',
  foldedByCategory,
  top,
);
print('inclusive time of selected functions', inclusiveByFunction, top);
print(
  'inclusive time by package / part (a sample counts once per part on its stack)',
  inclusiveByCategory,
  top,
);
print('self time by function', selfByFunction, top);
