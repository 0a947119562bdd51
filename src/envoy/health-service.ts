/** grpc.health.v1.Health from health.proto alone, for the server: it needs none of the Envoy protos. */
import type * as grpc from '@grpc/grpc-js';
import { loadServices } from './protos-loader';

export const HealthService: grpc.ServiceDefinition = loadServices(['grpc/health/v1/health.proto'])(
  'grpc.health.v1.Health',
).service;
