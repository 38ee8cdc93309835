/**
 * The bytes undici's parser takes from an exporter's connection, counted as
 * it takes them, and the exchange on that connection asked before each read
 * whether it may go on. undici hands a handler only the body and the heads'
 * fields: what lies around them (1xx heads' framing, chunk sizes and
 * extensions, trailers, whitespace) is parsed without a word, so it is
 * counted here, on the socket.
 */
import type { Socket } from "node:net";
import type { buildConnector, Client, Dispatcher, Pool } from "undici";

/** What one connection's parser has taken, and the exchange watching it. @internal */
export interface ConnectionMeter {
  /** Bytes the parser has read from the socket, less those it gave back (`unshift`, when it pauses). */
  bytes: number;
  /** The exchange on the connection, if any: asked before each read; false stops the read (it has failed the exchange). */
  watcher: { within(bytes: number): boolean } | undefined;
}

/**
 * Where a {@link meteredPoolFactory}'s client puts the meter of its current
 * connection on each handler it is given: an exchange's handler carrying
 * this key gets it at dispatch, and reads its `meter` when its request starts
 * (a client has one connection at a time, the one the request goes on).
 *
 * @internal
 */
export const meterSlot = Symbol("promproxy.exporterMeter");

/** A client's current connection's meter; `meter` changes when the client reconnects. @internal */
export interface MeterRef {
  meter: ConnectionMeter | undefined;
}

/**
 * Counts what `socket`'s reader takes: undici reads a connection with
 * `read()` (the whole buffer at a time) and gives back what it did not parse
 * with `unshift()` when its parser pauses. Before each read, the watcher sees
 * the count so far, by then parsed whole; a watcher that refuses it has
 * failed its exchange (which destroys the socket), and the read returns
 * nothing, so nothing more is parsed.
 *
 * @internal
 */
export function meterSocket(socket: Socket): ConnectionMeter {
  const meter: ConnectionMeter = { bytes: 0, watcher: undefined };
  const read = socket.read;
  const unshift = socket.unshift;
  socket.read = function (this: Socket, size?: number) {
    if (meter.watcher && !meter.watcher.within(meter.bytes)) return null;
    const chunk: unknown = read.call(this, size);
    if (chunk) meter.bytes += (chunk as Buffer).byteLength;
    return chunk;
  };
  socket.unshift = function (this: Socket, chunk: Buffer | string | Uint8Array, encoding?: BufferEncoding) {
    meter.bytes -= typeof chunk === "string" ? Buffer.byteLength(chunk, encoding) : chunk.byteLength;
    return unshift.call(this, chunk, encoding);
  };
  return meter;
}

/**
 * A Pool `factory` whose clients meter each connection they make (the
 * connector the Pool built from its options, wrapped), and give the meter's
 * holder to every handler dispatched on them that has a {@link meterSlot}.
 *
 * @internal
 */
export function meteredPoolFactory(ClientClass: typeof Client): NonNullable<Pool.Options["factory"]> {
  return (origin, opts) => {
    const ref: MeterRef = { meter: undefined };
    const connect = (opts as { connect: buildConnector.connector }).connect;
    const metered: buildConnector.connector = (o, callback) =>
      connect(o, (err, socket) => {
        if (!err && socket) ref.meter = meterSocket(socket as Socket);
        (callback as (e: Error | null, s: unknown) => void)(err, socket);
      });
    const client = new ClientClass(origin, { ...(opts as Client.Options), connect: metered });
    const dispatch = client.dispatch.bind(client);
    client.dispatch = (o: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => {
      if (meterSlot in handler) (handler as { [meterSlot]?: MeterRef })[meterSlot] = ref;
      return dispatch(o, handler);
    };
    return client;
  };
}
