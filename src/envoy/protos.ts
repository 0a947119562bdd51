import { existsSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// Vendored, unmodified upstream protos (see proto/NOTICE.md). google/protobuf/*
// well-known types are deliberately not vendored: protobufjs ships them.

// This file runs both as src/envoy/protos.ts (ts-jest) and dist/src/envoy/protos.js
// (compiled), so locate proto/ by walking up to the package root, not a fixed `../..`.
function findPackageRoot(start: string): string {
  let dir = start;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`package.json not found above ${start}`);
    dir = parent;
  }
  return dir;
}

export const PROTO_DIR = path.join(findPackageRoot(__dirname), 'proto');

const packageDefinition = protoLoader.loadSync(
  ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'],
  { includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
);
const root = grpc.loadPackageDefinition(packageDefinition);

// loadPackageDefinition returns an untyped tree; resolve a dotted name and check it is a service.
function serviceClient(fullName: string): grpc.ServiceClientConstructor {
  let node: unknown = root;
  for (const part of fullName.split('.')) {
    node = (node as grpc.GrpcObject | undefined)?.[part];
  }
  const ctor = node as grpc.ServiceClientConstructor | undefined;
  if (typeof ctor !== 'function' || typeof ctor.service !== 'object') {
    throw new Error(`gRPC service ${fullName} not found in loaded protos`);
  }
  return ctor;
}

export const AuthorizationClient = serviceClient('envoy.service.auth.v3.Authorization');
export const AuthorizationService: grpc.ServiceDefinition = AuthorizationClient.service;

export const HealthClient = serviceClient('grpc.health.v1.Health');
export const HealthService: grpc.ServiceDefinition = HealthClient.service;
