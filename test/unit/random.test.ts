/** The pooled CSPRNG reader: the lengths asked for, and never the same bytes twice across pool refills. */
import { randomBytes } from '../../src/l402/random';

describe('randomBytes (pooled)', () => {
  it('returns the length asked for, from 0 to more than the pool', () => {
    for (const n of [0, 1, 28, 32, 64, 4095, 4096, 4097, 10_000]) expect(randomBytes(n)).toHaveLength(n);
    expect(() => randomBytes(-1)).toThrow(RangeError);
  });

  it('never hands out the same bytes twice, across many refills of the pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) seen.add(randomBytes(32).toString('hex'));
    expect(seen.size).toBe(2_000);
  });

  it('hands out copies: the pool wipes what it handed out, and the copy keeps its bytes', () => {
    // A view into the pool would read as zeros once wiped; two zero draws in a row are not chance.
    const a = randomBytes(32);
    const b = randomBytes(32);
    expect([a.equals(Buffer.alloc(32)), b.equals(Buffer.alloc(32))]).toEqual([false, false]);
    // And changing a copy changes nothing the pool hands out next.
    a.fill(0);
    expect(randomBytes(32).equals(Buffer.alloc(32))).toBe(false);
  });
});
