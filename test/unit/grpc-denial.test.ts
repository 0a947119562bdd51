import { render } from '../../src/core/response';

const options = { stripAuthorization: true };
const challenge = {
  macaroon: 'bWFj',
  invoice: 'lnbcrt10n1xyz',
  paymentHash: 'ab'.repeat(32),
  amountSats: 1,
  expiresAt: new Date(0),
  uses: 1,
  tokenExpiresAt: new Date(3600_000),
};

describe('a denial for a gRPC client is shaped as aperture’s proxy shapes it', () => {
  it('a challenge: grpc-status 13, "payment required", WWW-Authenticate kept, no body', () => {
    const answer = render({ kind: 'deny', reason: 'payment_required', challenge }, options, { grpc: true });
    if (answer.allowed) throw new Error('expected a denial');
    expect(answer.status).toBe(402);
    expect(answer.body).toBe('');
    expect(answer.headers.slice(0, 3)).toEqual([
      ['content-type', 'application/grpc'],
      ['grpc-status', '13'],
      ['grpc-message', 'payment required'],
    ]);
    expect(answer.headers.filter(([n]) => n === 'www-authenticate')).toHaveLength(2);
  });

  it.each([
    ['token_spent', 'payment required (token_spent)'],
    ['unmatched_route', 'unmatched_route: No priced route matches this request.'],
  ] as const)('%s: %s', (reason, message) => {
    const answer = render({ kind: 'deny', reason, ...(reason === 'token_spent' && { challenge }) }, options, {
      grpc: true,
    });
    if (answer.allowed) throw new Error('expected a denial');
    expect(answer.headers).toContainEqual(['grpc-message', message]);
  });

  it('maps 403, 429 and 503 to PERMISSION_DENIED, RESOURCE_EXHAUSTED and UNAVAILABLE', () => {
    const code = (reason: 'unmatched_route' | 'rate_limited' | 'spent_set_unavailable') => {
      const answer = render({ kind: 'deny', reason }, options, { grpc: true });
      return answer.allowed ? undefined : answer.headers.find(([n]) => n === 'grpc-status')?.[1];
    };
    expect([code('unmatched_route'), code('rate_limited'), code('spent_set_unavailable')]).toEqual([
      '7',
      '8',
      '14',
    ]);
  });

  it('an HTTP client still gets the JSON body', () => {
    const answer = render({ kind: 'deny', reason: 'payment_required', challenge }, options);
    expect(answer.allowed ? '' : answer.body).toMatch(/^\{"error":"payment_required"/);
  });
});
