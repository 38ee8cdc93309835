/**
 * A response body read in whole gRPC envelopes, for the Connect transport:
 * connect-es's envelope decoder sums the lengths of every piece it holds at
 * each new piece, so a server dripping a frame a byte per DATA frame makes it
 * work in the square of the frame's size (a 40 KB frame took 3 s; a 1 MiB one,
 * what the read limit allows, would hold the host for hours). Here the pieces
 * are gathered, at a cost in their size, until an envelope is complete, and
 * handed on as one. An envelope announcing more than `readLimit` bytes is
 * handed on at once, so that connect-es refuses it at its length prefix,
 * unread. Each piece taken is told to `pace` (its bytes, and the envelopes it
 * completed), which says how long to wait before handing on what it completed
 * and reading the next: a drip is read no faster than the client's frame
 * budget allows, and flow control holds the server meanwhile. Each complete
 * envelope of a message (flags 0) is shown to `check` before it is handed on:
 * it throws (a ConnectError, which ends the stream) for a message whose
 * repeated entries are over their caps, so that connect-es never decodes it
 * (frame-entries.ts).
 *
 * @internal
 */
export function wholeEnvelopes(
  inner: AsyncIterator<Buffer>,
  readLimit: number,
  pace: (bytes: number, envelopes: number) => number,
  check: (body: Uint8Array) => void = () => {},
): AsyncIterableIterator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  /** Bytes `pending` must hold before it is worth a look: the next header, or the rest of the envelope begun. */
  let need = 5;
  let passThrough = false;
  let ended = false;
  /** Envelopes in what `complete()` returned last. */
  let completed = 0;

  /** Joins `pending`; returns the complete envelopes at its start (if any), keeping the rest. */
  function complete(): Buffer | undefined {
    const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    let pos = 0;
    need = 5;
    completed = 0;
    while (all.byteLength - pos >= 5) {
      const length = all.readUInt32BE(pos + 1);
      if (length > readLimit) {
        passThrough = true; // connect-es refuses it at its prefix: from here on, pieces go on as they come
        pos = all.byteLength;
        break;
      }
      if (all.byteLength - pos < 5 + length) {
        need = 5 + length;
        break;
      }
      if (all[pos] === 0) check(all.subarray(pos + 5, pos + 5 + length)); // a message (an end-stream or compressed one: connect-es's business)
      pos += 5 + length;
      completed++;
    }
    const rest = all.subarray(pos);
    pending = rest.byteLength > 0 ? [rest] : [];
    pendingBytes = rest.byteLength;
    if (!passThrough) need = pendingBytes >= 5 ? need : 5;
    return pos > 0 ? all.subarray(0, pos) : undefined;
  }

  const it: AsyncIterableIterator<Buffer> = {
    async next(): Promise<IteratorResult<Buffer>> {
      for (;;) {
        if (ended) {
          if (pendingBytes === 0) return { done: true, value: undefined };
          const rest = Buffer.concat(pending, pendingBytes); // an incomplete envelope: connect-es says so
          pending = [];
          pendingBytes = 0;
          return { done: false, value: rest };
        }
        const r = await inner.next();
        if (r.done) {
          ended = true;
          continue;
        }
        const chunk = r.value;
        let out: Buffer | undefined;
        if (passThrough) out = chunk;
        else {
          pending.push(chunk);
          pendingBytes += chunk.byteLength;
          out = pendingBytes >= need ? complete() : undefined;
        }
        const wait = pace(chunk.byteLength, out && !passThrough ? completed : 0);
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (out) return { done: false, value: out };
      }
    },
    return(value?: unknown) {
      return inner.return ? inner.return(value) : Promise.resolve({ done: true as const, value: undefined });
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}
