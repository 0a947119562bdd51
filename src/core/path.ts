/**
 * Request paths as an upstream will understand them. Routes are matched against the normalized path, so
 * `/public/../v1/generate` is priced as `/v1/generate`, the resource the upstream serves. What normalizes
 * differently in different servers (an encoded slash, a backslash, a double encoding, `..;`) is refused:
 * no single reading of it is safe to price.
 *
 * The normalization is RFC 3986's (§6.2.2.2 decode unreserved characters, §5.2.4 remove_dot_segments) plus
 * Envoy's `merge_slashes`; Envoy's `path_with_escaped_slashes_action: REJECT_REQUEST` for %2F and %5C.
 */

export type NormalizedPath = { ok: true; path: string } | { ok: false; detail: string };

const HEX = /^[0-9A-Fa-f]{2}$/;
const UNRESERVED = /^[A-Za-z0-9._~-]$/;
// Printable ASCII only: an upstream may fold other characters (fullwidth `．` → `.`) into something else.
const PRINTABLE = /^[\x21-\x7e]*$/;
// A `.` or `..` segment that some servers still see under a path parameter (Tomcat, Jetty: `..;x` is `..`).
const DOT_WITH_PARAMETER = /^\.{1,2}(?:;|%3B)/i;

/** `path` has no query string or fragment: the adapters cut them off first. */
export function normalizePath(path: string): NormalizedPath {
  if (!path.startsWith('/')) return ambiguous('the path does not start with /');
  if (!PRINTABLE.test(path)) return ambiguous('the path has a character outside printable ASCII');
  if (path.includes('\\')) return ambiguous('the path has a backslash');
  // Most paths are already normal: nothing to decode, no empty segment, no segment starting with a dot.
  if (!path.includes('%') && !path.includes('//') && !path.includes('/.')) return { ok: true, path };

  let decoded = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i] as string;
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return ambiguous('the path has a malformed percent-encoding');
    const byte = Number.parseInt(hex, 16);
    const char = String.fromCharCode(byte);
    if (char === '/' || char === '\\') return ambiguous('the path has an encoded slash or backslash');
    // `%25` before two hex digits decodes to another escape: a server that decodes twice sees `%2e` as `.`.
    if (char === '%' && HEX.test(path.slice(i + 3, i + 5)))
      return ambiguous('the path has a double percent-encoding');
    if (byte < 0x20 || byte === 0x7f) return ambiguous('the path has an encoded control character');
    decoded += UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
    i += 2;
  }

  const segments = decoded.slice(1).split('/');
  if (segments.some((s) => DOT_WITH_PARAMETER.test(s)))
    return ambiguous('the path has a dot segment with a parameter (..;)');

  // Envoy removes dot segments and then merges slashes; nginx merges first. Where the order matters
  // (`/public//../v1`), the two readings name different routes.
  const envoy = removeDotSegments(segments).filter(notEmptyInside);
  const nginx = removeDotSegments(segments.filter(notEmptyInside));
  const [a, b] = [`/${envoy.join('/')}`, `/${nginx.join('/')}`];
  if (a !== b) return ambiguous('the path has repeated slashes next to a dot segment');
  return { ok: true, path: a };
}

/** RFC 3986 §5.2.4 on the segments after the leading slash; a final `.` or `..` leaves a trailing slash. */
function removeDotSegments(segments: readonly string[]): string[] {
  const out: string[] = [];
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') out.pop();
      if (last) out.push('');
      return;
    }
    out.push(segment);
  });
  return out;
}

/** Merges repeated slashes; keeps the one empty segment that is a trailing slash. */
function notEmptyInside(segment: string, i: number, all: readonly string[]): boolean {
  return segment !== '' || i === all.length - 1;
}

function ambiguous(detail: string): NormalizedPath {
  return { ok: false, detail };
}
