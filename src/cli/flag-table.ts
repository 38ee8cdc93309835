/**
 * A command's settings as one table (src/cli/server-flags.ts,
 * src/cli/client-flags.ts): each row is a flag, a PROMPROXY_* variable and a
 * config file key (unless it says otherwise), with its usage lines and its
 * default. Everything else is read from the table: the parseArgs spec, the
 * usage text, the variables' names, the keys a file may hold, the defaults.
 *
 * @internal
 */

/** Where a setting may be given. */
export type Source = "flag" | "env" | "file";

/** One setting of a command. */
export interface SettingRow {
  /** The flag's name without "--"; the file key; the variable's name through {@link envName}. */
  readonly key: string;
  readonly type: "string" | "boolean";
  /** Repeatable as a flag. */
  readonly multiple?: boolean;
  readonly short?: string;
  /** The value's placeholder in the usage text: "HOST:PORT". */
  readonly arg?: string;
  /** Where it may be given. Default: all three. */
  readonly in?: readonly Source[];
  /** A heading printed, after a blank line, before the row's usage lines. */
  readonly section?: string;
  /** The usage lines after the flag; a row without them is not shown. */
  readonly help?: readonly string[];
  /** The value the command uses when the setting is not given, written as the flag would give it. */
  readonly default?: string;
  /** What the usage text shows in brackets, when it is not `default` (a library's default, a rule). */
  readonly shown?: string;
  /** The usage text says "(required)". */
  readonly required?: boolean;
}

/** The environment variable of a setting: max-clients is PROMPROXY_MAX_CLIENTS. */
export const envName = (key: string) => `PROMPROXY_${key.toUpperCase().replace(/-/g, "_")}`;

/** The settings' values as a command reads them: strings, booleans for switches. */
export type ValuesOf<T extends readonly SettingRow[]> = { [R in T[number] as R["key"]]?: R["type"] extends "boolean" ? boolean : string };

type Spec = Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>;

const given = (r: SettingRow, s: Source) => (r.in ?? ["flag", "env", "file"]).includes(s);

/** The parseArgs options: every row that is a flag. */
export function specOf(rows: readonly SettingRow[]): Spec {
  const spec: Spec = {};
  for (const r of rows) {
    if (!given(r, "flag")) continue;
    spec[r.key] = { type: r.type, ...(r.multiple ? { multiple: true } : {}), ...(r.short ? { short: r.short } : {}) };
  }
  return spec;
}

/** Keys read from PROMPROXY_* variables (PROMPROXY_CONFIG aside: every command reads it, src/cli/config-source.ts). */
export const envKeysOf = (rows: readonly SettingRow[]): string[] => rows.filter((r) => given(r, "env")).map((r) => r.key);

/** Keys a config file may hold. */
export const fileKeysOf = (rows: readonly SettingRow[]): string[] => rows.filter((r) => given(r, "file")).map((r) => r.key);

/** The defaults the command uses, by key (undefined where the row has none). */
export type DefaultsOf<T extends readonly SettingRow[]> = { [R in T[number] as R["key"]]: R extends { default: infer D } ? D : undefined };

/** The defaults the command uses, by key. */
export function defaultsOf<T extends readonly SettingRow[]>(rows: T): DefaultsOf<T> {
  return Object.fromEntries(rows.map((r) => [r.key, r.default])) as DefaultsOf<T>;
}

/** How the usage text lays out rows. */
export interface UsageLayout {
  /** Where the help text starts. */
  helpColumn: number;
  /** Where a default in brackets (and "(required)") starts, unless the line is longer. */
  markColumn: number;
  /** A flag too long for its column: on a line of its own, or followed by two spaces and the help. */
  longFlags: "own-line" | "inline";
  /** The longest line a default in brackets is appended to; a longer one gets it on a line of its own. */
  maxWidth: number;
}

/** The rows' part of the usage text: each flag with its help, its default in brackets, and the sections' headings. */
export function usageOf(rows: readonly SettingRow[], layout: UsageLayout): string {
  const out: string[] = [];
  const indent = " ".repeat(layout.helpColumn);
  const mark = (line: string, text: string) => `${line.padEnd(Math.max(layout.markColumn, line.length + 2))}${text}`;
  for (const r of rows) {
    if (!r.help || !given(r, "flag")) continue;
    if (r.section !== undefined) out.push("", r.section);
    const head = `  --${r.key}${r.arg ? ` ${r.arg}` : ""}`;
    const help = [...r.help];
    const lines: string[] = [];
    if (head.length < layout.helpColumn - 1) lines.push(head.padEnd(layout.helpColumn) + (help.shift() ?? ""));
    else if (layout.longFlags === "inline") lines.push(`${head}  ${help.shift() ?? ""}`);
    else lines.push(head);
    for (const h of help) lines.push(indent + h);
    if (r.required) lines[0] = mark(lines[0]!, "(required)");
    const shown = r.shown ?? r.default;
    if (shown !== undefined) {
      const last = lines.length - 1;
      const marked = mark(lines[last]!, `[${shown}]`);
      if (marked.length <= layout.maxWidth) lines[last] = marked;
      else lines.push(`${indent}[${shown}]`);
    }
    out.push(...lines.map((l) => l.trimEnd()));
  }
  return out.join("\n");
}
