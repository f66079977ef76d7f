/**
 * The one place that knows etcd3's error classes: classifies what the etcd client throws for
 * the runtime (exit codes, HTTP statuses), which then never imports etcd3 itself.
 */
import {
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdRoleNotGrantedError,
  EtcdUserNotFoundError,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
  isRecoverableError,
} from "etcd3";
import type { CoordinatorErrorKind } from "../error-kind.ts";

export function classifyEtcdError(err: unknown): CoordinatorErrorKind {
  if (!(err instanceof Error)) return "other";
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof EtcdRoleNotGrantedError ||
    err instanceof EtcdUserNotFoundError ||
    err instanceof EtcdInvalidAuthTokenError ||
    err instanceof GRPCUnauthenticatedError
  ) {
    return "credentials";
  }
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || isRecoverableError(err))
    return "unavailable";
  // etcd3's circuit breaker (cockatiel) gave up on every host.
  if ((err as { isBrokenCircuitError?: unknown }).isBrokenCircuitError === true) return "unavailable";
  return "other";
}
