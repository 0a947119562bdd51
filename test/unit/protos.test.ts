import { existsSync } from 'node:fs';
import path from 'node:path';
import { HealthService as ServerHealthService } from '../../src/envoy/health-service';
import {
  AuthorizationClient,
  AuthorizationService,
  HealthClient,
  HealthService,
  PROTO_DIR,
} from '../../src/envoy/protos';
import { CHECK_PATH } from '../../src/server/grpc-server';

describe('vendored protos', () => {
  it('resolves the proto dir at the package root', () => {
    expect(PROTO_DIR).toBe(path.resolve(__dirname, '..', '..', 'proto'));
    expect(existsSync(path.join(PROTO_DIR, 'envoy/service/auth/v3/external_auth.proto'))).toBe(true);
    // Well-known types come from protobufjs, not the vendored tree.
    expect(existsSync(path.join(PROTO_DIR, 'google/protobuf'))).toBe(false);
  });

  it('serves Check at the proto’s path, a unary call, and health from health.proto alone', () => {
    const check = AuthorizationService.Check;
    expect(CHECK_PATH).toBe(check?.path);
    expect([check?.requestStream, check?.responseStream]).toEqual([false, false]);
    expect(Object.keys(ServerHealthService).sort()).toEqual(Object.keys(HealthService).sort());
    for (const [name, method] of Object.entries(HealthService))
      expect(ServerHealthService[name]?.path).toBe(method.path);
  });

  it('exposes envoy.service.auth.v3.Authorization/Check', () => {
    const check = AuthorizationService.Check;
    expect(check).toBeDefined();
    expect(check?.path).toBe('/envoy.service.auth.v3.Authorization/Check');
    expect(check?.requestStream).toBe(false);
    expect(check?.responseStream).toBe(false);
    expect(typeof AuthorizationClient).toBe('function');
  });

  it('round-trips a CheckResponse with google.rpc.Status and a denied response', () => {
    const check = AuthorizationService.Check;
    if (!check) throw new Error('Check missing');
    const bytes = check.responseSerialize({
      status: { code: 7, message: 'payment required' },
      denied_response: { status: { code: 'PaymentRequired' }, body: 'pay' },
    });
    const decoded = check.responseDeserialize(bytes) as Record<string, unknown>;
    expect(decoded.status).toMatchObject({ code: 7, message: 'payment required' });
    expect(decoded.http_response).toBe('denied_response');
    expect(decoded.denied_response).toMatchObject({ status: { code: 'PaymentRequired' }, body: 'pay' });
  });

  it('exposes grpc.health.v1.Health/Check', () => {
    expect(HealthService.Check?.path).toBe('/grpc.health.v1.Health/Check');
    expect(HealthService.Watch?.responseStream).toBe(true);
    expect(typeof HealthClient).toBe('function');
  });
});
