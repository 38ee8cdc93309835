/**
 * The configuration of `promproxy server`: flags over PROMPROXY_* variables
 * over a JSON or YAML file (--config) over defaults, by the rules the
 * forwarder's configuration follows (src/cli/config-source.ts). Values come
 * out as the flags give them (strings, and booleans for switches), each with
 * where it came from, for messages. Pure: reading files is passed in.
 *
 * @internal
 */
import { bool } from "./config-values.ts";
import { readSources } from "./config-source.ts";
import { clientEnvKeys } from "./client-flags.ts";
import { serverOptionSpec, serverSettingKeys, type ServerFlag, type ServerValues } from "./server-flags.ts";
import { CliError } from "./util.ts";

export type { ServerValues };

export interface ServerConfig {
  values: ServerValues;
  /** Where a setting came from: "--max-clients", "PROMPROXY_MAX_CLIENTS" or "srv.yaml: max-clients". */
  from(key: ServerFlag): string;
  /** The config file read, if any. */
  configFile?: string;
  /** PROMPROXY_* variables ignored, and why: for the log. */
  warnings: string[];
}

const settingKeys = serverSettingKeys;

/**
 * Builds the server's settings. Returns "help" for --help. Throws a one-line
 * CliError naming the flag, variable or file key at fault.
 */
export function resolveServerConfig(argv: string[], env: NodeJS.ProcessEnv, readFile: (path: string) => string): ServerConfig | "help" {
  const sources = readSources({ command: "server", argv, env, readFile, spec: serverOptionSpec, keys: new Set(settingKeys), envKeys: settingKeys, otherKeys: clientEnvKeys });
  if (sources === "help") return "help";
  const values: Record<string, string | boolean> = {};
  const from: Record<string, string> = {};
  if (sources.flags["hash-password"]) values["hash-password"] = true;
  for (const k of settingKeys) {
    const s = sources.pick(k);
    if (s === undefined) continue;
    from[k] = s.from;
    if (serverOptionSpec[k]?.type === "boolean") {
      values[k] = bool(s);
      continue;
    }
    // YAML gives numbers for counts and lists for lists: as the flag would have them.
    const v = s.value;
    if (typeof v === "string" && v !== "") values[k] = v;
    else if (typeof v === "number" && Number.isFinite(v)) values[k] = String(v);
    else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === "string" || typeof x === "number")) values[k] = v.join(",");
    else throw new CliError(`${s.from}: want a string, got ${JSON.stringify(v)}`);
  }
  return { values: values as ServerValues, from: (k) => from[k] ?? `--${k}`, configFile: sources.configPath, warnings: sources.warnings };
}
