/**
 * The one parser of "host:port" addresses (peer addresses, listen addresses, HTTP addresses),
 * including bracketed IPv6 ("[::1]:7000").
 *
 * Every place that reads an address (config validation, the peer channel, the HTTP server, the
 * CLI launcher) goes through {@linkcode readHostPort}, so that they all accept and refuse the
 * same strings: an address that config accepts is one that the node can bind and dial.
 */

import { AspenError } from "../shard/mod.ts";

/** A parsed address. */
export interface HostPort {
  /** The host without brackets: "127.0.0.1", "node-3.internal" or "::1". */
  readonly hostname: string;
  readonly port: number;
}

/** The largest TCP or UDP port. */
export const PORT_MAX = 65_535;
/** The longest host name (DNS names are at most 253 characters in text form). */
export const HOSTNAME_LENGTH_MAX = 253;

/** Options of {@linkcode readHostPort} and {@linkcode parseHostPort}. */
export interface HostPortOptions {
  /** Whether port 0 (an ephemeral port, chosen when binding) is allowed. */
  readonly isListen: boolean;
}

const HOSTNAME_PATTERN = /^[A-Za-z0-9._-]+$/;
const IPV6_PATTERN = /^[0-9A-Fa-f:.]+$/;
const PORT_PATTERN = /^[0-9]{1,5}$/;

/**
 * Reads "host:port" and returns the address, or the reason it is not one (a lowercase phrase
 * that callers put after their own "Cannot use ...: ").
 *
 * A host is a name or IPv4 address (letters, digits, ".", "-", "_") or an IPv6 address in
 * brackets; an unbracketed IPv6 address is refused because its last colon is ambiguous.
 */
export function readHostPort(
  text: string,
  options: HostPortOptions,
): { readonly hostPort: HostPort } | { readonly problem: string } {
  const colon = text.lastIndexOf(":");
  const isBareIpv6 = text.startsWith("[") && text.endsWith("]");
  if (colon < 0 || isBareIpv6) return { problem: 'expected "host:port" but there is no port' };
  const host = text.slice(0, colon);
  const hostname = host.startsWith("[") ? host.slice(1, -1) : host;
  const hostProblem = host.startsWith("[") ? ipv6Problem(host) : hostnameProblem(host);
  if (hostProblem !== null) return { problem: hostProblem };
  const portText = text.slice(colon + 1);
  if (!PORT_PATTERN.test(portText)) {
    return { problem: `the port "${portText}" is not a number from 0 to ${PORT_MAX}` };
  }
  const port = Number(portText);
  const portMin = options.isListen ? 0 : 1;
  if (port < portMin || port > PORT_MAX) {
    return { problem: `the port is ${port} but must be from ${portMin} to ${PORT_MAX}` };
  }
  return { hostPort: { hostname, port } };
}

/**
 * Parses "host:port" (see {@linkcode readHostPort}). Port 0 is allowed only when `isListen`.
 *
 * @param options.what names the address in the error, as in "the peer listen address".
 * @throws {AspenError} `bad_config` naming `what`, the value and the reason.
 */
export function parseHostPort(
  text: string,
  options: HostPortOptions & { readonly what: string },
): HostPort {
  const read = readHostPort(text, options);
  if ("hostPort" in read) return read.hostPort;
  throw new AspenError("bad_config", `Cannot use ${options.what} "${text}": ${read.problem}`, {
    value: text,
  });
}

/** Formats an address back to "host:port", bracketing IPv6 hosts. */
export function formatHostPort(address: HostPort): string {
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return `${host}:${address.port}`;
}

function hostnameProblem(host: string): string | null {
  if (host.length === 0) return "the host is empty";
  if (host.includes(":")) return 'an IPv6 host must be in brackets, as in "[::1]:7000"';
  if (host.length > HOSTNAME_LENGTH_MAX) {
    return `the host is ${host.length} characters but the limit is ${HOSTNAME_LENGTH_MAX}`;
  }
  if (!HOSTNAME_PATTERN.test(host)) return `the host "${host}" has a character not allowed there`;
  return null;
}

function ipv6Problem(host: string): string | null {
  if (!host.endsWith("]")) return "an IPv6 host needs a closing bracket";
  const inner = host.slice(1, -1);
  const isIpv6 = inner.includes(":") && inner.length <= HOSTNAME_LENGTH_MAX &&
    IPV6_PATTERN.test(inner);
  if (!isIpv6) return `the host "${host}" is not an IPv6 address in brackets`;
  return null;
}
