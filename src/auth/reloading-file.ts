import * as fs from "node:fs";

/**
 * A file parsed once at construction (errors throw, so a bad configuration
 * fails at startup) and re-read whenever it has changed when its value is next
 * asked for: a `stat` per use, no timers and no watchers, so nothing to close
 * and nothing missed when a file is replaced by a rename (Kubernetes secrets,
 * `mv new old`). A change that fails to read or parse keeps the last good value
 * and is reported once through `onError`; the next change is tried again.
 *
 * @internal
 */
export interface ReloadingFile<T> {
  /** The current value, re-read first if the file changed. */
  current(): Promise<T>;
  /** The value loaded last, without looking at the file. */
  readonly last: T;
  /** Bumped on every successful reload (for caches built on the value). */
  readonly generation: number;
}

function signature(st: fs.BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

export function reloadingFile<T>(path: string, parse: (text: string) => T, onError: (error: Error) => void): ReloadingFile<T> {
  let sig = signature(fs.statSync(path, { bigint: true }));
  let value = parse(fs.readFileSync(path, "utf8"));
  let generation = 0;
  let failedSig: string | undefined;
  let pending: Promise<T> | undefined;

  async function refresh(): Promise<T> {
    let now: string;
    try {
      now = signature(await fs.promises.stat(path, { bigint: true }));
    } catch (e) {
      // Gone for a moment (a rename in progress) or for good: keep serving the last good value.
      if (failedSig !== "missing") onError(e as Error);
      failedSig = "missing";
      return value;
    }
    if (now === sig || now === failedSig) return value;
    try {
      const text = await fs.promises.readFile(path, "utf8");
      value = parse(text);
      sig = now;
      failedSig = undefined;
      generation++;
    } catch (e) {
      failedSig = now;
      onError(e as Error);
    }
    return value;
  }

  return {
    current() {
      pending ??= refresh().finally(() => (pending = undefined));
      return pending;
    },
    get last() {
      return value;
    },
    get generation() {
      return generation;
    },
  };
}
