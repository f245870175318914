// Types of the ScheduleZero SDK for JavaScript, for handlers written in TypeScript (the build
// type-checks and transpiles `app.ts`) and for editors.

/** What the host tells a method about the call it runs. */
export interface JobContext {
  /** The job (schedule) this run belongs to; `adhoc` for a call made by hand. */
  jobId: string;
  /** This run's id; retries keep it, so it serves as an idempotency key. */
  runId: string;
  /** 1 for the first try, then 2, 3, ... on retries. */
  attempt: number;
  /** When the run was scheduled to fire (not when it started). */
  scheduledTime: Date;
}

/** A call's failure of a kind the host knows. Throw one of its subclasses. */
export class HandlerError extends Error {
  readonly kind: "invalid-params" | "unknown-method" | "failed" | "retryable" | "denied";
}
/** The params are not valid for the method: retrying the same call cannot succeed. */
export class InvalidParams extends HandlerError {}
/** The handler has no method of that name (the SDK throws it). */
export class UnknownMethod extends HandlerError {}
/** The call failed; the host does not retry it. */
export class Failed extends HandlerError {}
/** The call failed for a reason that may pass; the job's retry policy may run it again. */
export class Retryable extends HandlerError {}
/** The call needed something the operator did not grant (it fails with `capability_denied`). */
export class Denied extends HandlerError {}

export interface ConfigRequest {
  key: string;
  description: string;
  secret: boolean;
}
export interface HttpRequest {
  destination: string;
  purpose: string;
}
export interface DirectoryRequest {
  name: string;
  access: "read-only" | "read-write";
  purpose: string;
}
/** A configuration value the handler reads with `config.get(key)`. */
export function Setting(key: string, description: string): ConfigRequest;
/** A secret the handler reads with `config.secret(key)`, granted by reference, never shown. */
export function Secret(key: string, description: string): ConfigRequest;
/** Outbound HTTP (`fetch`) to the destinations of one allow-list entry. */
export function Http(destination: string, purpose: string): HttpRequest;
/** A directory (for the manifest; the engine has no file system API). */
export const Directory: {
  readOnly(name: string, purpose: string): DirectoryRequest;
  readWrite(name: string, purpose: string): DirectoryRequest;
};

/** Configuration values and secrets the operator granted this handler. */
export const config: {
  /** The value of `key`, or undefined when the operator did not set it. */
  get(key: string): string | undefined;
  /** The keys the operator set for this handler, sorted. */
  keys(): string[];
  /** The secret `key`; throws `Denied` when it was not granted. */
  secret(key: string): string;
  /** The configuration value `key`; throws `Denied` when the operator did not set it. */
  require(key: string): string;
};

/** Records in the host's log, tagged with the handler, the job and the run. */
export const log: {
  trace(message: unknown): void;
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
};

/** One parameter: its JSON Schema and its check; `T` is the value the method receives. */
export class Param<T> {
  private readonly __type: T;
  readonly schema: Record<string, unknown>;
  readonly required: boolean;
  /** Not required; absent or null, the method gets undefined. */
  optional(): Param<T | undefined>;
  /** Not required; absent, the method gets `value`. */
  default(value: T): Param<T>;
}

/** The values of an object of params. */
export type ParamsOf<P extends Record<string, Param<unknown>>> = {
  [K in keyof P]: P[K] extends Param<infer T> ? T : never;
};

interface Bounds {
  min?: number;
  max?: number;
}

/** Parameter builders. */
export const p: {
  string(description?: string): Param<string>;
  integer(description?: string, bounds?: Bounds): Param<number>;
  number(description?: string, bounds?: Bounds): Param<number>;
  boolean(description?: string): Param<boolean>;
  oneOf<const V extends readonly (string | number | boolean)[]>(values: V, description?: string): Param<V[number]>;
  array<T>(item: Param<T>, description?: string): Param<T[]>;
  object<P extends Record<string, Param<unknown>>>(props: P, description?: string): Param<ParamsOf<P>>;
  record<T>(value: Param<T>, description?: string): Param<Record<string, T>>;
  any(description?: string): Param<unknown>;
};

/** A method, as `method(...)` makes it. */
export interface Method<S> {
  readonly description: string;
  readonly fn: (this: S, ctx: JobContext, params: never) => unknown;
}

/** A method that takes no params. */
export function method<S = any>(description: string, fn: (this: S, ctx: JobContext) => unknown): Method<S>;
/** A method whose params are the properties declared. */
export function method<S = any, P extends Record<string, Param<unknown>> = Record<string, Param<unknown>>>(
  description: string,
  params: P,
  fn: (this: S, ctx: JobContext, params: ParamsOf<P>) => unknown,
): Method<S>;
/** A method that receives its params as they came. */
export function method<S = any, T = unknown>(
  description: string,
  params: Param<T>,
  fn: (this: S, ctx: JobContext, params: T) => unknown,
): Method<S>;

/** What `handler(...)` takes. */
export interface HandlerSpec<S> {
  name: string;
  version: string;
  description?: string;
  /** One state per instance, kept while it is hot (methods get it as `this`). */
  state?: () => S;
  methods: Record<string, Method<S>>;
  config?: ConfigRequest[];
  http?: HttpRequest[];
  directories?: DirectoryRequest[];
  /** Why the handler asks for the read-only fleet view. */
  fleet?: string;
  vendor?: string;
  license?: string;
  source?: string;
}

/** A handler: export it as the module's default. */
export interface Handler {
  readonly name: string;
  info(): unknown;
  manifest(): Record<string, unknown>;
  reset(): void;
  invoke(ctx: JobContext, method: string, params: string): string | Promise<string>;
}
export function handler<S = Record<string, never>>(spec: HandlerSpec<S>): Handler;

/** The context of a call made by hand (and for tests). */
export function adhocContext(runId?: string): JobContext;

/** An unexpected exception as a failure message: what it was, then its stack. */
export function failureText(e: unknown): string;

/** Running a handler natively, for its own tests. */
export const testing: {
  configure(values?: Record<string, string>): void;
  logs(): [string, string][];
  call(h: Handler, method: string, params?: unknown, options?: { ctx?: JobContext; fresh?: boolean }): any;
  describe(h: Handler): any;
};
