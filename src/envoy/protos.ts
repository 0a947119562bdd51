/** The Envoy ext_authz and gRPC health services, for clients (tests, benches, `plannt check`). */
import type * as grpc from '@grpc/grpc-js';
import { loadServices, PROTO_DIR } from './protos-loader';

export { PROTO_DIR };

const serviceClient = loadServices([
  'envoy/service/auth/v3/external_auth.proto',
  'grpc/health/v1/health.proto',
]);

export const AuthorizationClient = serviceClient('envoy.service.auth.v3.Authorization');
export const AuthorizationService: grpc.ServiceDefinition = AuthorizationClient.service;

export const HealthClient = serviceClient('grpc.health.v1.Health');
export const HealthService: grpc.ServiceDefinition = HealthClient.service;
