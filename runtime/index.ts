export { Spooler, type PeriodicOptions } from './spooler.js';
export type { SpoolerOptions, EnqueueOptions, TaskOptions, MessageOptions, TaskHandle, TaskRequest, TaskFunction } from './spooler.js';
export { chain, ChainRequest, ChainBrokenError, CHAIN_KEEP_RESULT_MS, type ChainHandle, type ChainedFunction } from './chains.js';
export { toStep, type Step, type StepSpec } from './steps.js';
export { derivedId } from '../spool/derived-id.js';
export { currentTask, taskContext, ClaimLostError, NotInTaskError, TaskCancelledError, TaskTimeoutError, type TaskContext, type TaskLogger } from './context.js';
export { processed, skipped, rescheduled, failed, outcomeOf, PermanentError, TaskResult, type TaskOutcome } from './results.js';
export { backoffDelay, toRetrySpec, DEFAULT_RETRY, type BackoffOptions } from './backoff.js';
export type { TaskHooks, RunEnd, ErrorMatcher, BehaviourOptions } from './task-behaviour.js';
export type { CancelResult } from '../spool/cancel.js';
export type { ChildrenOptions } from './children.js';
export type { ChildEnding } from '../spool/children.js';
export { toMs, toDueTime, type Duration, type Postpone } from './duration.js';
export {
  TaskNotProcessedError,
  TaskFailedError,
  TaskSkippedError,
  TaskWasCancelledError,
  TaskExpiredError,
  ResultValueLostError,
  ResultTimeoutError,
  type WaitOptions,
} from './wait.js';
export { TASK_ENDINGS, type TaskEnding, type ResultRecord } from '../spool/results.js';
export { FCALL, MESSAGE, type TaskTypeHandler } from './task-types.js';
export {
  ArgumentConversionError,
  ReturnConversionError,
  ConverterRegistrationError,
  ConverterCycleError,
  MissingConverterDependencyError,
  ARGUMENT_TYPES,
  type ArgumentRule,
  type ArgumentType,
  type Converter,
  type ConverterSpec,
  type ConvertFunction,
  type ConversionOptions,
} from './converters.js';
export type { Progress } from '../spool/progress.js';
export type { ProgressListener } from './progress-watch.js';
export * from '../spool/errors.js';
export type { TaskFile } from '../spool/task-file.js';
export type { TaskBody, RetrySpec, BackoffSpec, BackoffKind } from '../spool/body.js';
export type { SpoolEntry } from '../spool/entries.js';
export type { TaskState } from '../spool/layout.js';
export { PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT } from '../spool/name.js';
export { InlineRunner, INLINE_TIMES, type InlineOptions, type InlineTime, type InlineRunRecord, type InlineLogRecord } from './inline.js';
