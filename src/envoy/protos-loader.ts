/** Loads vendored protos into gRPC service definitions. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

// Vendored, unmodified upstream protos (see proto/NOTICE.md). google/protobuf/*
// well-known types are deliberately not vendored: protobufjs ships them.

// This file runs both as src/envoy/protos-loader.ts (ts-jest) and dist/src/envoy/protos-loader.js
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

/**
 * The gRPC services of some vendored proto files. A server process loads only health.proto (health-service.ts):
 * the Envoy protos cost ~6 MB of RSS per worker and Check is served on raw bytes (grpc-server.ts).
 */
export function loadServices(files: string[]): (fullName: string) => grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(files, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const root = grpc.loadPackageDefinition(definition);
  // loadPackageDefinition returns an untyped tree; resolve a dotted name and check it is a service.
  return (fullName) => {
    let node: unknown = root;
    for (const part of fullName.split('.')) {
      node = (node as grpc.GrpcObject | undefined)?.[part];
    }
    const ctor = node as grpc.ServiceClientConstructor | undefined;
    if (typeof ctor !== 'function' || typeof ctor.service !== 'object') {
      throw new Error(`gRPC service ${fullName} not found in loaded protos`);
    }
    return ctor;
  };
}
