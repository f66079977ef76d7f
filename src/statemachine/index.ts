/** The task state machine (docs/architecture.md): public surface of src/statemachine/. */
export type {
  BareMessageCode,
  ErrorPolicy,
  Message,
  MessageCode,
  State,
  StateCode,
  StateError,
  StatefulContext,
  StatefulRun,
  StateStore,
  TaskCommander,
  TaskCommandSource,
} from "./types.ts";
export { MESSAGE_CODES, STATE_CODES, TERMINAL_STATES, isMessageCode, isStateCode, isTerminal } from "./types.ts";
export {
  checkpointMessage,
  completeMessage,
  describeMessage,
  describeState,
  errorMessage,
  killMessage,
  messageProblem,
  pauseMessage,
  releaseMessage,
  runMessage,
  sleepMessage,
} from "./messages.ts";
export { TRANSITIONS, allRules, applyMessage, nextStateCode } from "./rules.ts";
export {
  DEFAULT_BACKOFF,
  DEFAULT_ERROR_WINDOW,
  DEFAULT_MAX_ERRORS,
  backoffDelay,
  defaultErrorPolicy,
} from "./error-policy.ts";
export type { BackoffOptions, DefaultErrorPolicyOptions } from "./error-policy.ts";
export {
  UNKNOWN_GO_ERROR,
  decodeMessage,
  decodeState,
  encodeMessage,
  encodeState,
  formatTime,
  parseTime,
} from "./codec.ts";
export { StateStoreError } from "./errors.ts";
export { runStateMachine } from "./runner.ts";
export type { RunnerOptions } from "./runner.ts";
export { statefulHandler } from "./stateful.ts";
export type { StatefulHandler, StatefulHandlerOptions, StateSnapshot } from "./stateful.ts";
