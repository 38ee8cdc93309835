#!/usr/bin/env python3
"""A promproxy client in Python: serves a prometheus_client registry through a promproxy server.

It dials out to the server, keeps one bidirectional gRPC stream (promproxy.v1.ScrapeService/Scrape)
open (one per replica of its replica set, when the server announces one), and answers the scrape orders
that arrive on it. Prometheus scrapes it as http://NAME/metrics
through the server's proxy_url. Generate the stubs first (see README.md), then:

    python3 client.py --server http://127.0.0.1:8080 --name app-py [--label team=alpha]
    python3 client.py http://127.0.0.1:8080 app-py [BODY_BYTES]
"""
import argparse, asyncio, gzip, hashlib, logging, os, random, re, signal, sys, urllib.parse

import grpc
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.exposition import choose_encoder

# The stubs generated from proto/promproxy/v1/scrape.proto: from $PYTHONPATH, or from ./gen next to this file.
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))
try:
    from promproxy.v1 import scrape_pb2 as pb, scrape_pb2_grpc as pb_grpc
except ImportError:
    sys.exit("promproxy: no generated stubs (promproxy.v1.scrape_pb2): generate them as examples/python/README.md shows")

VERSION = "promproxy-python-example/0.1"
WELCOME_TIMEOUT_S = 10  # the first attempt's wait for a welcome; doubled after each attempt that got none in time
MAX_WELCOME_TIMEOUT_S = 60  # ... up to this; a welcome brings it back to WELCOME_TIMEOUT_S
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 30.0  # the backoff between attempts: doubling from the first to the largest
STABLE_STREAM_S = 10.0  # a welcomed stream that lived this long (welcome to end) starts the backoff over
RETRY_AFTER_KEY = "promproxy-retry-after-ms"  # a refusal's retry hint: milliseconds, 1 to 10 decimal digits
FATAL_CODES = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT}
MAX_REPLICAS = 64  # the most replica ids a set may name (more: a protocol error)
SEARCH_MAX_S = 10.0  # while a replica of the set is missing, search attempts are at most this far apart
log = logging.getLogger("promproxy")

# The application's own metrics: any metric on prometheus_client's default REGISTRY is served.
SCRAPES = Counter("promproxy_example_scrapes", "Scrapes this example client has served.")


class ScrapeFailed(Exception):
    """Ends a scrape with an error: reason is a ScrapeErrorReason value."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def seconds(duration, default):
    """A google.protobuf.Duration field in seconds; `default` when it is unset or zero."""
    return (duration.seconds + duration.nanos / 1e9) or default


def retry_hint(error):
    """The wait in seconds a refusal's retry hint asks for (its trailers, then its headers), clamped to the backoff's
    bounds (a hint of 0 still waits FIRST_DELAY_S, an hour MAX_DELAY_S); 0 when there is none or it is not one value
    of 1 to 10 digits (a sign, a unit, a fraction, two values): the backoff runs as without it."""
    for metadata in (error.trailing_metadata(), error.initial_metadata()):
        values = [v for k, v in metadata or () if k == RETRY_AFTER_KEY]
        if values:
            v = values[0].strip() if isinstance(values[0], str) else ""
            if len(values) > 1 or not re.fullmatch(r"[0-9]{1,10}", v):
                return 0
            return min(MAX_DELAY_S, max(FIRST_DELAY_S, int(v) / 1000))
    return 0


def render(order, registry):
    """The body and response headers for a scrape order, honouring Accept and Accept-Encoding."""
    url = urllib.parse.urlsplit(order.path)
    if url.path != "/metrics":
        raise ScrapeFailed(pb.SCRAPE_ERROR_REASON_NOT_FOUND, f"only /metrics is served, not {url.path}")
    headers = {h.name.lower(): h.value for h in order.headers}
    names = urllib.parse.parse_qs(url.query).get("name[]")  # Prometheus' federation-style filter
    if names:
        registry = registry.restricted_registry(names)
    encode, content_type = choose_encoder(headers.get("accept", ""))  # OpenMetrics when asked, else text 0.0.4
    body = encode(registry)
    out = {"content-type": content_type}  # Prometheus 3 refuses a scrape without a content-type
    gzip_ok = re.search(r"(?:^|,)\s*gzip\s*(?:;\s*q=(\d(?:\.\d*)?))?\s*(?:,|$)", headers.get("accept-encoding", ""))
    if gzip_ok and float(gzip_ok.group(1) or 1) > 0:  # "gzip", "gzip;q=0.5", but not "gzip;q=0"
        body, out["content-encoding"] = gzip.compress(body), "gzip"
    out["content-length"] = str(len(body))  # exact, so the server can check it (for HEAD: what GET would send)
    return body, out


def assigned(name, ids, k):
    """The replicas of the set `ids` client `name` holds: all when k is 0 or at least their number, else the k of
    highest rendezvous weight (first 8 bytes of SHA-256(name 0x00 id), big-endian; equal weights: smaller id first)."""
    if k <= 0 or k >= len(ids):
        return set(ids)
    weight = lambda i: int.from_bytes(hashlib.sha256(name.lower().encode() + b"\0" + i.encode()).digest()[:8], "big")
    return set(sorted(ids, key=lambda i: (-weight(i), i))[:k])


class Fleet:
    """The streams held, by replica id, and the replicas to hold under the latest replica set (feature
    "replica-set", PROTOCOL.md "The replica set"). Each stream follows its own replica's set only."""

    def __init__(self, name):
        self.name = name
        self.held = {}  # replica id -> Session
        self.wanted = None  # the replicas the latest set (from any stream) assigns this client; None: no set known
        self.changed = asyncio.Event()  # set when the replicas held or wanted change
        self.patience = WELCOME_TIMEOUT_S  # the next attempt's wait for a welcome, over all the client's streams

    def check(self, ids, k, own=None):
        """The replicas a set assigns this client (None for no set); ConnectionError for a bad set."""
        ids = list(ids)
        if not ids:
            return None
        if len(ids) > MAX_REPLICAS or len(set(ids)) != len(ids) or any(not i or len(i) > 128 for i in ids):
            raise ConnectionError(f"the server announced a bad replica set ({len(ids)} ids, at most {MAX_REPLICAS}, distinct, 1-128 characters)")
        if own is not None and own not in ids:
            raise ConnectionError(f"the welcome's replica set lacks its own replica {own!r}")
        return assigned(self.name, ids, k)

    def follow(self, mine):
        if mine is not None and mine != self.wanted:
            self.wanted = mine
            self.changed.set()

    def welcome(self, session, w):
        """A welcome on `session`; False when that stream is to be closed (its own set does not give it this client)."""
        mine = self.check(w.replica_ids, w.replicas_per_client, w.replica_id)
        if mine is not None and w.replica_id not in mine:
            return False  # it should have refused the hello: closed, its set not believed
        self.follow(mine)
        if w.replica_id:
            old = self.held.get(w.replica_id)
            if old is not None and old is not session:
                old.goodbye()  # the server welcomes a second stream for our name only once the first is dead
            self.held[w.replica_id] = session
            self.changed.set()
        return True

    def replica_set(self, session, rs):
        """A ReplicaSet frame on `session`: that stream is closed when its own replica's set no longer gives it us."""
        mine = self.check(rs.replica_ids, rs.replicas_per_client)
        if mine is None:
            return
        if session.replica and session.replica not in mine:
            log.info("closing the stream to replica %s: its own replica set no longer gives it this client", session.replica)
            session.goodbye()
        self.follow(mine)

    def ended(self, session):
        if session.replica and self.held.get(session.replica) is session:
            del self.held[session.replica]
            self.changed.set()

    def missing(self):
        return self.wanted is not None and any(r not in self.held for r in self.wanted)


class Scrape:
    """One scrape in flight: its task, the body bytes it may still send, an event set when Credit arrives."""

    def __init__(self, credit):
        self.task, self.credit, self.more = None, credit, asyncio.Event()


class Session:
    """One Scrape stream: hello, welcome, then orders until the stream ends."""

    def __init__(self, args, stop, fleet):
        self.args, self.stop, self.fleet = args, stop, fleet
        self.out = asyncio.Queue()  # frames to send; None closes the request stream
        self.scrapes = {}  # scrape id -> Scrape
        self.max_chunk, self.heartbeat, self.welcomed, self.replica = 64 * 1024, 10.0, False, ""
        self.welcomed_at = None  # the event loop's time of the welcome
        self.settled = asyncio.Event()  # set once welcomed, or once the stream ended
        self.closing, self.call = False, None

    def goodbye(self):
        """Ends the request stream cleanly (a half-close); the server ends its side, at the latest in 2 s we do."""
        if not self.closing:
            self.closing = True
            self.out.put_nowait(None)
            asyncio.get_running_loop().call_later(2, lambda: self.call and self.call.cancel())

    def send(self, **frame):
        self.out.put_nowait(pb.ClientFrame(**frame))

    async def requests(self):
        """The request stream gRPC reads from; it ends (half-closes cleanly) at the None sentinel."""
        while (frame := await self.out.get()) is not None:
            yield frame

    async def run(self):
        a = self.args
        held = list(self.fleet.held)  # the replicas held: a server among them refuses us as a step of the search
        hello = pb.Hello(name=a.name, labels=a.labels, version=VERSION, features=["head", "replica-set"], held_replica_ids=held)
        self.send(hello=hello)  # no targets: /metrics, any port
        target = urllib.parse.urlsplit(a.server)
        creds = grpc.ssl_channel_credentials() if target.scheme == "https" else None
        # A fresh channel per stream, so that a dead connection is never reused after a heartbeat timeout.
        async with (grpc.aio.secure_channel(target.netloc, creds) if creds else grpc.aio.insecure_channel(target.netloc)) as channel:
            call = self.call = pb_grpc.ScrapeServiceStub(channel).Scrape(self.requests())
            closer = asyncio.create_task(self.close_on_stop(call))
            try:
                patience = self.fleet.patience
                deadline = asyncio.get_running_loop().time() + patience
                while True:
                    try:
                        first = await asyncio.wait_for(call.read(), max(0.0, deadline - asyncio.get_running_loop().time()))
                    except asyncio.TimeoutError:  # the next attempt waits twice as long (a server slowed by a storm)
                        self.fleet.patience = min(MAX_WELCOME_TIMEOUT_S, 2 * self.fleet.patience)
                        raise asyncio.TimeoutError(f"no welcome from the server within {patience:g}s") from None
                    if first is grpc.aio.EOF:
                        raise ConnectionError("the stream ended without a welcome")
                    kind = first.WhichOneof("frame")
                    if kind == "welcome":
                        break
                    if kind is not None:  # a frame kind of a newer server (None) is ignored, before the welcome too
                        raise ConnectionError(f"the server sent {kind} before its welcome")
                w = first.welcome
                self.fleet.patience = WELCOME_TIMEOUT_S
                self.max_chunk = w.limits.max_chunk_bytes or 64 * 1024
                self.heartbeat = seconds(w.heartbeat_interval, 10.0)
                log.info("connected to %s as %s (session %s, replica %s)", a.server, a.name, w.session_id, w.replica_id or "-")
                self.welcomed, self.replica = True, w.replica_id
                self.welcomed_at = asyncio.get_running_loop().time()
                if not self.fleet.welcome(self, w):
                    log.info("closing the stream to replica %s: its own replica set does not give it this client", w.replica_id)
                    self.replica = ""
                    self.goodbye()
                self.settled.set()
                while True:
                    # Nothing heard for three heartbeat intervals: the path is dead, drop the stream.
                    frame = await asyncio.wait_for(call.read(), 3 * self.heartbeat)
                    if frame is grpc.aio.EOF:
                        return
                    self.dispatch(frame)
            finally:
                self.fleet.ended(self)
                self.settled.set()
                closer.cancel()
                for scrape in self.scrapes.values():
                    scrape.task.cancel()
                call.cancel()

    async def close_on_stop(self, call):
        """On SIGTERM/SIGINT: stop the scrapes, end the request stream cleanly, give the server 2 s to end its side."""
        await self.stop.wait()
        for scrape in self.scrapes.values():
            scrape.task.cancel()
        self.out.put_nowait(None)
        await asyncio.sleep(2)
        call.cancel()

    def dispatch(self, frame):
        kind = frame.WhichOneof("frame")  # None for a kind this code does not know: ignored
        if kind == "order":
            o = frame.order
            scrape = self.scrapes[o.scrape_id] = Scrape(o.credit_bytes)
            scrape.task = asyncio.create_task(self.serve(o, scrape))
        elif kind == "credit" and frame.credit.scrape_id in self.scrapes:  # unknown or finished ids: ignored
            scrape = self.scrapes[frame.credit.scrape_id]
            scrape.credit += frame.credit.bytes
            scrape.more.set()
        elif kind == "cancel" and frame.cancel.scrape_id in self.scrapes:
            self.scrapes.pop(frame.cancel.scrape_id).task.cancel()  # and nothing more is sent for it
        elif kind == "ping":
            self.send(pong=pb.Pong(nonce=frame.ping.nonce))
        elif kind == "replica_set":
            self.fleet.replica_set(self, frame.replica_set)

    async def serve(self, order, scrape):
        sid, timeout, error = order.scrape_id, seconds(order.timeout, 10.0), None
        try:
            await asyncio.wait_for(self.respond(order, scrape), timeout)
        except asyncio.TimeoutError:
            error = pb.ScrapeError(reason=pb.SCRAPE_ERROR_REASON_TIMEOUT, message=f"collecting /metrics took longer than {timeout:g}s")
        except ScrapeFailed as e:
            error = pb.ScrapeError(reason=e.reason, message=str(e))
        except Exception as e:  # a collector failed: say so in one line, keep the stream
            error = pb.ScrapeError(reason=pb.SCRAPE_ERROR_REASON_INTERNAL, message=f"collecting /metrics failed: {e!r}"[:500])
        # A cancelled task (Cancel, or the stream went away) raises CancelledError past the excepts: no End.
        if self.scrapes.pop(sid, None) is not None:
            self.send(end=pb.ResultEnd(scrape_id=sid, error=error))

    async def respond(self, order, scrape):
        SCRAPES.inc()
        body, headers = await asyncio.to_thread(render, order, REGISTRY)  # collecting may be slow: off the event loop
        self.send(head=pb.ResultHead(scrape_id=order.scrape_id, status=200, headers=[pb.Header(name=k, value=v) for k, v in headers.items()]))
        if order.method == "HEAD":
            return
        view, offset = memoryview(body), 0
        while offset < len(body):
            if scrape.credit <= 0:  # out of credit: wait for a Credit frame
                scrape.more.clear()
                await scrape.more.wait()
                continue
            n = min(self.max_chunk, scrape.credit, len(body) - offset)
            scrape.credit -= n
            self.send(chunk=pb.ResultChunk(scrape_id=order.scrape_id, data=bytes(view[offset:offset + n])))
            offset += n


async def pause_until(event, stop, seconds):
    """Sleeps `seconds`, or less when `event` or `stop` is set first."""
    waits = [asyncio.create_task(e.wait()) for e in (event, stop)]
    await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()


async def search(args, stop, fleet):
    """While a replica the latest set assigns this client is not held: a new stream (through a balancer it lands on
    some replica) at once when the set changes, then 0.1 s doubling to at most 10 s apart, for as long as it lasts."""
    streams, delay = set(), 0.1
    while not stop.is_set():
        fleet.changed.clear()
        if not fleet.missing():
            await pause_until(fleet.changed, stop, None)
            delay = 0.1
            continue
        session = Session(args, stop, fleet)
        task = asyncio.create_task(quietly(session))
        streams.add(task)
        task.add_done_callback(streams.discard)
        await session.settled.wait()
        if session.welcomed and fleet.held.get(session.replica) is session:
            delay = 0.1  # found one: look for the next at once
            continue
        await pause_until(fleet.changed, stop, delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, SEARCH_MAX_S)
    if streams:
        await asyncio.wait(streams, timeout=5)


async def quietly(session):
    """Runs a search stream; its failures are steps of the search (a replica held refuses us, or one not assigned)."""
    try:
        await session.run()
    except (grpc.aio.AioRpcError, asyncio.TimeoutError, ConnectionError) as e:
        log.debug("search stream: %s", e)
    except asyncio.CancelledError:
        pass
    finally:
        session.settled.set()


async def main(args):
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    fleet = Fleet(args.name)
    searcher = asyncio.create_task(search(args, stop, fleet))
    ever_welcomed, delay = False, FIRST_DELAY_S
    while not stop.is_set():
        while fleet.held and not stop.is_set():  # other streams held: the search, not this loop, replaces this one
            await pause_until(stop, stop, 0.5)
        if stop.is_set():
            break
        session, hint = Session(args, stop, fleet), 0
        try:
            await session.run()
            problem = "the server ended the stream"
        except grpc.aio.AioRpcError as e:
            if e.code() in FATAL_CODES and not (ever_welcomed or session.welcomed):
                log.error("the server refused %s: %s %s", args.name, e.code().name, e.details())
                return 1
            problem, hint = f"stream failed: {e.code().name} {e.details()}", retry_hint(e)
        except (asyncio.TimeoutError, ConnectionError) as e:
            problem = f"stream dropped: {str(e) or 'no welcome or heartbeat in time'}"
        except asyncio.CancelledError:  # grpc.aio raises this from a call close_on_stop cancelled
            if not stop.is_set():
                raise
        if stop.is_set():
            break
        ever_welcomed = ever_welcomed or session.welcomed
        # Only a stream that lived STABLE_STREAM_S starts the backoff over; one welcomed and ended sooner counts as a
        # failed attempt (a server that welcomes and resets every stream must not get a redial every half second).
        if session.welcomed_at is not None and asyncio.get_running_loop().time() - session.welcomed_at >= STABLE_STREAM_S:
            delay = FIRST_DELAY_S
        pause = delay * random.uniform(0.5, 1.0)  # jittered, so that many clients do not come back in step
        pause = max(pause, hint)  # the server's retry hint lengthens the wait, never shortens it
        log.warning("%s; reconnecting in %.3fs%s", problem, pause, f" (retry hint {hint:g}s)" if hint else "")
        try:  # sleep, unless a signal comes first
            await asyncio.wait_for(stop.wait(), pause)
        except asyncio.TimeoutError:
            pass
        delay = min(delay * 2, MAX_DELAY_S)  # the steps grow as without a hint
    await searcher
    return 0


def parse_args():
    p = argparse.ArgumentParser(description="Serve prometheus_client's registry through a promproxy server.")
    p.add_argument("server_pos", nargs="?", metavar="SERVER", help="same as --server")
    p.add_argument("name_pos", nargs="?", metavar="NAME", help="same as --name")
    p.add_argument("--server", help="the promproxy server, e.g. http://127.0.0.1:8080")
    p.add_argument("--name", help="the name Prometheus scrapes this client by, e.g. app-py")
    p.add_argument("body_bytes_pos", nargs="?", type=int, metavar="BODY_BYTES", help="same as --body-bytes")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="a discovery label (repeatable)")
    p.add_argument("--body-bytes", type=int, default=0, metavar="N",
                   help="pad the exposition with series to at least N bytes (the conformance kit's {size})")
    a = p.parse_args()
    a.server, a.name = a.server or a.server_pos, a.name or a.name_pos
    a.body_bytes = a.body_bytes or a.body_bytes_pos or 0
    if not a.server or not a.name or not all("=" in kv for kv in a.label):
        p.error("need a server and a name, and labels as K=V")
    a.labels = dict(kv.split("=", 1) for kv in a.label)
    return a


def pad(body_bytes):
    """Series that make the exposition at least body_bytes long (about 50 bytes each)."""
    if body_bytes > 0:
        padding = Gauge("promproxy_example_padding", "Series that make the body --body-bytes long.", ["series"])
        for i in range(body_bytes // 50 + 1):
            padding.labels(f"padding-series-{i:06d}").set(i)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args()
    pad(args.body_bytes)
    sys.exit(asyncio.run(main(args)))
