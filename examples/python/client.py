#!/usr/bin/env python3
"""A promproxy client in Python: serves a prometheus_client registry through a promproxy server.

It dials out to the server, keeps one bidirectional gRPC stream (promproxy.v1.ScrapeService/Scrape)
open, and answers the scrape orders that arrive on it. Prometheus scrapes it as http://NAME/metrics
through the server's proxy_url. Generate the stubs first (see README.md), then:

    python3 client.py --server http://127.0.0.1:8080 --name app-py [--label team=alpha]
    python3 client.py http://127.0.0.1:8080 app-py [BODY_BYTES]
"""
import argparse, asyncio, gzip, logging, os, random, re, signal, sys, urllib.parse

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
WELCOME_TIMEOUT_S = 10
FATAL_CODES = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT}
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


class Scrape:
    """One scrape in flight: its task, the body bytes it may still send, an event set when Credit arrives."""

    def __init__(self, credit):
        self.task, self.credit, self.more = None, credit, asyncio.Event()


class Session:
    """One Scrape stream: hello, welcome, then orders until the stream ends."""

    def __init__(self, args, stop):
        self.args, self.stop = args, stop
        self.out = asyncio.Queue()  # frames to send; None closes the request stream
        self.scrapes = {}  # scrape id -> Scrape
        self.max_chunk, self.heartbeat, self.welcomed = 64 * 1024, 10.0, False

    def send(self, **frame):
        self.out.put_nowait(pb.ClientFrame(**frame))

    async def requests(self):
        """The request stream gRPC reads from; it ends (half-closes cleanly) at the None sentinel."""
        while (frame := await self.out.get()) is not None:
            yield frame

    async def run(self):
        a = self.args
        hello = pb.Hello(name=a.name, labels=a.labels, version=VERSION, features=["head"])  # no targets: /metrics, any port
        self.send(hello=hello)
        target = urllib.parse.urlsplit(a.server)
        creds = grpc.ssl_channel_credentials() if target.scheme == "https" else None
        # A fresh channel per stream, so that a dead connection is never reused after a heartbeat timeout.
        async with (grpc.aio.secure_channel(target.netloc, creds) if creds else grpc.aio.insecure_channel(target.netloc)) as channel:
            call = pb_grpc.ScrapeServiceStub(channel).Scrape(self.requests())
            closer = asyncio.create_task(self.close_on_stop(call))
            try:
                deadline = asyncio.get_running_loop().time() + WELCOME_TIMEOUT_S
                while True:
                    first = await asyncio.wait_for(call.read(), max(0.0, deadline - asyncio.get_running_loop().time()))
                    if first is grpc.aio.EOF:
                        raise ConnectionError("the stream ended without a welcome")
                    kind = first.WhichOneof("frame")
                    if kind == "welcome":
                        break
                    if kind is not None:  # a frame kind of a newer server (None) is ignored, before the welcome too
                        raise ConnectionError(f"the server sent {kind} before its welcome")
                w = first.welcome
                self.max_chunk = w.limits.max_chunk_bytes or 64 * 1024
                self.heartbeat = seconds(w.heartbeat_interval, 10.0)
                log.info("connected to %s as %s (session %s)", a.server, a.name, w.session_id)
                self.welcomed = True
                while True:
                    # Nothing heard for three heartbeat intervals: the path is dead, drop the stream.
                    frame = await asyncio.wait_for(call.read(), 3 * self.heartbeat)
                    if frame is grpc.aio.EOF:
                        return
                    self.dispatch(frame)
            finally:
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


async def main(args):
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    ever_welcomed, delay = False, 0.5
    while not stop.is_set():
        session = Session(args, stop)
        try:
            await session.run()
            problem = "the server ended the stream"
        except grpc.aio.AioRpcError as e:
            if e.code() in FATAL_CODES and not (ever_welcomed or session.welcomed):
                log.error("the server refused %s: %s %s", args.name, e.code().name, e.details())
                return 1
            problem = f"stream failed: {e.code().name} {e.details()}"
        except (asyncio.TimeoutError, ConnectionError) as e:
            problem = f"stream dropped: {str(e) or 'no welcome or heartbeat in time'}"
        except asyncio.CancelledError:  # grpc.aio raises this from a call close_on_stop cancelled
            if not stop.is_set():
                raise
        if stop.is_set():
            break
        if session.welcomed:
            ever_welcomed, delay = True, 0.5  # the backoff starts over after a welcome
        pause = delay * random.uniform(0.5, 1.0)  # jittered, so that many clients do not come back in step
        log.warning("%s; reconnecting in %.1fs", problem, pause)
        try:  # sleep, unless a signal comes first
            await asyncio.wait_for(stop.wait(), pause)
        except asyncio.TimeoutError:
            pass
        delay = min(delay * 2, 30.0)
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
