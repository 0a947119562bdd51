/**
 * The invoice memo (BOLT11 description) Plannt writes, `<service>: <route id>`, and its inverse, which
 * attributes a settled invoice back to a service for the settlement metrics.
 */
import { NAME_PATTERN, ROUTE_ID_PATTERN } from './routes';

export function invoiceMemo(service: string, routeId: string): string {
  return `${service}: ${routeId}`;
}

/** What a settled invoice is counted under when its memo does not name one of `services`. */
export const OTHER_SERVICE = 'other';

/**
 * The service a memo names if it is one of `services` (a bounded label set), else OTHER_SERVICE: invoices
 * someone else created on a shared node, or for a service priced only through Envoy's context_extensions.
 */
export function serviceOfMemo(memo: string, services: ReadonlySet<string>): string {
  const separator = memo.indexOf(': ');
  if (separator < 0) return OTHER_SERVICE;
  const service = memo.slice(0, separator);
  const routeId = memo.slice(separator + 2);
  const ours = NAME_PATTERN.test(service) && ROUTE_ID_PATTERN.test(routeId) && services.has(service);
  return ours ? service : OTHER_SERVICE;
}

/** The route a memo names if it is one of `routes` (a bounded label set), else OTHER_SERVICE. */
export function routeOfMemo(memo: string, routes: ReadonlySet<string>): string {
  const separator = memo.indexOf(': ');
  const routeId = separator < 0 ? '' : memo.slice(separator + 2);
  return routes.has(routeId) ? routeId : OTHER_SERVICE;
}
