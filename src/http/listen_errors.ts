/**
 * Why a port could not be bound, as one line naming the setting to change (`PORT` or `HOST`): what
 * `main.ts` logs as "cannot start" instead of the runtime's stack trace.
 *
 * @module
 */

/** How Deno's error for a `HOST` that does not resolve begins (it has no error class of its own). */
const LOOKUP_FAILED = "failed to lookup address information";

/** The address the service listens on, as configured, for a "cannot start" line. */
export interface ListenAddress {
  /** `HOST`, as configured. */
  host: string | undefined;
  /** `PORT`, as configured. */
  port: string | undefined;
}

/** Binding a port fails with these: taken, not an address of this machine, or no such host. */
export function isListenError(error: unknown): error is Error {
  return error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable ||
    (error instanceof Error && error.message.startsWith(LOOKUP_FAILED));
}

/** Why the port could not be bound, as one line naming the setting to change. */
export function listenFailureReason(error: unknown, { host, port }: ListenAddress): string {
  const message = error instanceof Error ? error.message : String(error);
  const quoted = (value: string | undefined) => (value === undefined ? "" : ` "${value}"`);
  if (error instanceof Deno.errors.AddrInUse) {
    return `PORT${
      quoted(port)
    } is in use by another process (${message}): stop that process or set PORT to a free port`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `HOST${
      quoted(host)
    } is not an address of this machine (${message}): set HOST to one of its addresses, or "0.0.0.0" for all of them`;
  }
  if (message.startsWith(LOOKUP_FAILED)) {
    return `HOST${
      quoted(host)
    } does not resolve (${message}): set HOST to an address of this machine, or "0.0.0.0" for all of them`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `PORT${
      quoted(port)
    } needs privileges this process does not have (${message}): set PORT to 1024 or above`;
  }
  return `Cannot listen on${quoted(host)} port${quoted(port)}: ${message}; check HOST and PORT`;
}
