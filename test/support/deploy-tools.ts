/**
 * The tools that check deploy/: helm and kubecheck, built from pinned Go modules by
 * deploy/tools/ensure-tools.sh (cached outside the repository, linked into bin/), and helm invoked with a
 * throwaway HOME so it never reads or writes the user's helm configuration.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const REPO = path.resolve(__dirname, '../..');
export const CHART = path.join(REPO, 'deploy/helm/plannt');
export const HELM = path.join(REPO, 'bin/helm');
export const KUBECHECK = path.join(REPO, 'bin/kubecheck');
/** The chart asks for Kubernetes >= 1.30 (the preStop sleep action); helm template assumes 1.20 otherwise. */
export const KUBE_VERSION = '1.31.0';
/** A first build downloads and compiles helm's and client-go's modules: minutes, once per machine. */
export const ENSURE_TOOLS_TIMEOUT_MS = 25 * 60_000;

export function ensureDeployTools(): void {
  try {
    // Progress goes to the terminal: the first build takes a while.
    execFileSync('bash', [path.join(REPO, 'deploy/tools/ensure-tools.sh')], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: ENSURE_TOOLS_TIMEOUT_MS - 60_000,
    });
  } catch (err) {
    throw new Error(
      `could not build helm and kubecheck with deploy/tools/ensure-tools.sh (${(err as Error).message}). ` +
        'They are built from Go modules: install Go >= 1.26 into /usr/local/go and run the script once.',
    );
  }
  for (const bin of [HELM, KUBECHECK, path.join(REPO, 'bin/meshcheck')]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing after deploy/tools/ensure-tools.sh`);
  }
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

let helmHome: string | undefined;

/** Runs helm with its cache, config and data directories in a temporary HOME. */
export function helm(args: string[]): RunResult {
  helmHome ??= mkdtempSync(path.join(tmpdir(), 'plannt-helm-'));
  const result = spawnSync(HELM, args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: helmHome,
      HELM_CACHE_HOME: path.join(helmHome, 'cache'),
      HELM_CONFIG_HOME: path.join(helmHome, 'config'),
      HELM_DATA_HOME: path.join(helmHome, 'data'),
    },
  });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

export function removeHelmHome(): void {
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
  helmHome = undefined;
}

/** kubecheck: strict decoding of every document into the Kubernetes / Prometheus-operator Go types. */
export function kubecheck(manifests: string): RunResult {
  const result = spawnSync(KUBECHECK, [], { input: manifests, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

export const MESHCHECK = path.join(REPO, 'bin/meshcheck');

/**
 * meshcheck: `envoy` decodes a bootstrap with go-control-plane (protojson, every typed_config resolved) and
 * runs its generated ValidateAll() plus a cluster-reference check; `istio` decodes each document's spec
 * strictly into istio.io/api's types. One output line per problem, prefixed by the file.
 */
export function meshcheck(kind: 'envoy' | 'istio', files: string[]): RunResult {
  const result = spawnSync(MESHCHECK, [kind, ...files], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}
