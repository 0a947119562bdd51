/**
 * A small Buffer node makes (from a string, `allocUnsafe`, a slice) shares one of its 8 KiB pools, and keeps the
 * whole pool alive as long as it lives. Bytes held long after the request that brought them get memory of
 * their own: a held preimage or payment hash cost its pod ~8 KiB instead of 32 bytes.
 */
export function ownCopy(bytes: Uint8Array): Buffer {
  const copy = Buffer.alloc(bytes.length);
  copy.set(bytes);
  return copy;
}
