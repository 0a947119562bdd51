/**
 * The Check method's wire codec for the load generators: requests are serialised before the timed loop,
 * so the call itself only passes bytes through.
 */
import { AuthorizationService } from '../src/envoy/protos';

const checkMethod = AuthorizationService.Check;
if (!checkMethod) throw new Error('Authorization/Check not found in the loaded protos');

export const CHECK_PATH = checkMethod.path;
export const serializeCheckRequest = checkMethod.requestSerialize;
export const serializeCheckResponse = checkMethod.responseSerialize;
export const deserializeCheckResponse = checkMethod.responseDeserialize as (bytes: Buffer) => unknown;
export const passThrough = (bytes: Buffer): Buffer => bytes;
/** Open loop: stop scheduling if this many calls are outstanding (the server has fallen behind for good). */
export const MAX_OPEN_LOOP_IN_FLIGHT = 20_000;
