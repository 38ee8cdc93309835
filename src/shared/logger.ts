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

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/**
 * A logger that writes one line per message to standard error, as
 * `LEVEL message key=value ...`, dropping messages below `level`.
 */
export function createConsoleLogger(level: LogLevel = "warn", prefix = "promproxy"): Logger {
  const min = order[level];
  const write = (lvl: Exclude<LogLevel, "silent">) => (message: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < min) return;
    let line = `${new Date().toISOString()} ${lvl.toUpperCase()} ${prefix}: ${message}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v === undefined) continue;
        line += ` ${k}=${typeof v === "string" ? JSON.stringify(v) : String(v)}`;
      }
    }
    process.stderr.write(line + "\n");
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
