/**
 * Random bytes from node's CSPRNG, drawn 4 KiB at a time: each call into the generator cost more than the 32
 * bytes a token id or a preimage needs (~7 µs, profiled on the challenge path). A slice is copied out and wiped
 * from the pool, so the pool never holds bytes already handed out.
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

export function randomBytes(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`randomBytes(${n})`);
  if (n > POOL_BYTES) return randomFillSync(Buffer.alloc(n));
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.allocUnsafe(n);
  pool.copy(out, 0, offset, offset + n);
  pool.fill(0, offset, offset + n);
  offset += n;
  return out;
}
