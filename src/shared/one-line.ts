/**
 * Characters a viewer may take for a line break, a terminal command or a
 * reordering of the text: C0 controls, DEL, C1 controls, the Unicode line and
 * paragraph separators and the bidirectional controls. @internal
 */
export const unsafeChars = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069";

const unsafeRuns = new RegExp(`[${unsafeChars}]+`, "g");

/** Keeps a client-supplied message to one printable line of bounded length (every {@link unsafeChars} run a space). @internal */
export function oneLine(s: string, max = 512): string {
  const line = s.replace(unsafeRuns, " ").trim();
  return line.length > max ? line.slice(0, max) + "…" : line;
}
