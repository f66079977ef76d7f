/**
 * What kind of failure a coordinator call met, as the runtime needs to know it (exit codes,
 * HTTP statuses). Each coordinator classifies its own client's errors at its edge (for etcd:
 * classifyEtcdError in coordinators/etcd/errors.ts), so no generic path knows a client library.
 *
 * - "credentials": the cluster refused who we are (user, password, permissions): a
 *   configuration problem, retrying does not help;
 * - "unavailable": the cluster could not be reached or did not answer in time;
 * - "other": anything else.
 */
export type CoordinatorErrorKind = "credentials" | "unavailable" | "other";
