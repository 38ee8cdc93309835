/** Keeps a client-supplied message to one printable line of bounded length. @internal */
export function oneLine(s: string, max = 512): string {
  // eslint-disable-next-line no-control-regex
  const line = s.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return line.length > max ? line.slice(0, max) + "…" : line;
}
