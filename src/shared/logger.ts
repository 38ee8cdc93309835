/**
 * Where promproxy writes what it has to say. Each method takes one line of
 * text and optional structured fields. Secrets (tokens, passwords) are never
 * passed to a logger.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * A pino- or bunyan-shaped logger: fields first, then the message, and
 * `child()` for bound fields. Pass one wherever a {@link Logger} is taken
 * (`logger: pino()`): promproxy tells them apart by `child()`.
 */
export interface FieldsFirstLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  child(bindings: Record<string, unknown>): FieldsFirstLogger;
}

/** What a `logger` option takes. */
export type AnyLogger = Logger | FieldsFirstLogger;

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

/** `text`: `TIME LEVEL promproxy: message key=value ...`; `json`: one JSON object per line. */
export type LogFormat = "text" | "json";

/**
 * Fields pino and bunyan write themselves (and our JSON lines' own): an event
 * field of one of these names would repeat the key in the line, and most
 * parsers keep the last one. Ours never use them (the client is `client`);
 * should one slip through, it is written as `promproxy_<key>`.
 */
const ownedByLoggers = new Set(["name", "hostname", "pid", "level", "time", "msg", "v", "component"]);

/** The fields with any key a logger owns renamed. @internal */
export function safeFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields ?? {})) out[ownedByLoggers.has(k) ? `promproxy_${k}` : k] = v;
  return out;
}

const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };
const levels = ["debug", "info", "warn", "error"] as const;

/**
 * A logger that writes one line per message to standard error, dropping
 * messages below `level`. As `text`: `TIME LEVEL promproxy: message key=value ...`.
 * As `json` (for log shippers): `{"time","level","component","msg",...fields}`
 * with those stable names first, then the event's fields.
 */
export function createConsoleLogger(level: LogLevel = "warn", prefix = "promproxy", format: LogFormat = "text"): Logger {
  const min = order[level];
  const write = (lvl: Exclude<LogLevel, "silent">) => (message: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < min) return;
    const time = new Date().toISOString();
    if (format === "json") {
      const line: Record<string, unknown> = { time, level: lvl, component: prefix, msg: message };
      for (const [k, v] of Object.entries(safeFields(fields))) if (v !== undefined) line[k] = v instanceof Error ? v.message : v;
      process.stderr.write(JSON.stringify(line, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)) + "\n");
      return;
    }
    let line = `${time} ${lvl.toUpperCase()} ${prefix}: ${message}`;
    for (const [k, v] of Object.entries(fields ?? {})) {
      if (v === undefined) continue;
      line += ` ${k}=${typeof v === "string" ? JSON.stringify(v) : String(v)}`;
    }
    process.stderr.write(line + "\n");
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * Turns what a `logger` option holds into a {@link Logger}: a pino- or
 * bunyan-shaped logger (one with `child()`) gets a child bound to
 * `{ component }` and is called fields first; anything else is used as is.
 * A logger that throws never takes promproxy down with it.
 *
 * @internal
 */
export function toLogger(l: AnyLogger, component = "promproxy"): Logger {
  const fieldsFirst = typeof (l as Partial<FieldsFirstLogger>).child === "function";
  const target = fieldsFirst ? (l as FieldsFirstLogger).child({ component }) : l;
  const out = {} as Logger;
  for (const lvl of levels) {
    out[lvl] = (message, fields) => {
      try {
        if (fieldsFirst) (target as FieldsFirstLogger)[lvl](safeFields(fields), message);
        else (target as Logger)[lvl](message, fields);
      } catch {
        // a broken logger must not break scrapes
      }
    };
  }
  return out;
}

/**
 * A client's logger: every line carries `client` (its name). Pino and bunyan
 * keep `name` for the service's own name, so a `name` field from the engine
 * is dropped, never written over theirs.
 *
 * @internal
 */
export function withClientField(log: Logger, client: string): Logger {
  const out = {} as Logger;
  for (const level of levels) {
    out[level] = (message, fields) => {
      const { name: _name, ...rest } = fields ?? {};
      log[level](message, { client, ...rest });
    };
  }
  return out;
}
