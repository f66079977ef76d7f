/**
 * metafora: run long-lived tasks across a cluster. Public API of the library.
 * Sections are grouped by concept; each file holds one concept.
 */

// Types and errors
export type * from "./types.ts";
export * from "./errors.ts";
export { setLogger, getLogger, scopedLogger, silentLogger } from "./log.ts";

// Node commands
export { freeze, unfreeze, balance, stopTask, encodeCommand, decodeCommand } from "./command.ts";

// Core: consumer, handlers, balancers (issue 2)

// Memory coordinator (issue 2)

// etcd coordinator (issue 3)

// State machine (issue 4)
