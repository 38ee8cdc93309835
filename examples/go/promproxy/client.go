// Package promproxy makes a client_golang registry scrapeable through a promproxy server: the application
// dials out and keeps one Scrape stream open (one per replica of its replica set, when the server announces
// one); Prometheus scrapes it through the server with proxy_url.
//
//	err := promproxy.Run(ctx, promproxy.Options{Server: "http://proxy:8080", Name: "app-1", Gatherer: registry})
package promproxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/protobuf/ptypes"
	"github.com/golang/protobuf/ptypes/duration"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	pb "promproxy-example/promproxyv1"
)

// Version is announced in the hello.
const Version = "promproxy-go-example/0.1"

// Options of Run.
type Options struct {
	Server   string              // the server: "http://host:port" or "https://host[:port]"
	Name     string              // the name Prometheus scrapes this application by (a DNS host name)
	Labels   map[string]string   // labels announced for service discovery
	Gatherer prometheus.Gatherer // served at /metrics (any port); default prometheus.DefaultGatherer
	Logger   *log.Logger         // default log.Default()
}

const (
	welcomeTimeout   = 10 * time.Second
	defaultHeartbeat = 10 * time.Second
	defaultTimeout   = 10 * time.Second // a scrape's, when the order names none
	defaultChunk     = 64 << 10
	firstDelay       = 500 * time.Millisecond
	maxDelay         = 30 * time.Second
	stableStream     = 10 * time.Second // a welcomed stream that lived this long (welcome to end) starts the backoff over
)

// Run serves o.Gatherer through the server until ctx is done, reconnecting forever with backoff. Once ctx is
// done it closes the stream cleanly (the server delists the client at once) and returns nil. It returns an
// error only when the server refuses the client, before ever welcoming it, for a reason retrying cannot fix.
func Run(ctx context.Context, o Options) error {
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.Logger == nil {
		o.Logger = log.Default()
	}
	target, creds, err := dialTarget(o.Server)
	if err != nil {
		return err
	}
	delay, everWelcomed := firstDelay, false
	jitter := rand.New(rand.NewSource(time.Now().UnixNano())) // spreads clients that reconnect together
	f := newFleet(o.Name)
	var streams sync.WaitGroup // the search's streams: each says goodbye on a stop before Run returns
	searching, stopSearch := context.WithCancel(ctx)
	streams.Add(1)
	go func() {
		defer streams.Done()
		search(searching, o, target, creds, f, &streams)
	}()
	defer streams.Wait()
	defer stopSearch() // first: also when Run returns an error
	for {
		for f.holding() > 0 && ctx.Err() == nil { // other streams held: the search, not this loop, replaces this one
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		welcomedAt, hint, err := connect(ctx, o, target, creds, f, nil)
		if ctx.Err() != nil {
			return nil
		}
		welcomed := !welcomedAt.IsZero()
		everWelcomed = everWelcomed || welcomed
		if c := status.Code(err); !everWelcomed && (c == codes.Unauthenticated || c == codes.PermissionDenied || c == codes.InvalidArgument) {
			return fmt.Errorf("promproxy: the server refused %q: %s", o.Name, status.Convert(err).Message())
		}
		// Only a stream that lived stableStream starts the backoff over; one welcomed and ended sooner counts as a
		// failed attempt (a server that welcomes and resets every stream must not get a redial every half second).
		if welcomed && time.Since(welcomedAt) >= stableStream {
			delay = firstDelay
		}
		wait := delay/2 + time.Duration(jitter.Int63n(int64(delay/2)+1)) // jitter: half to all of the delay
		// The server's retry hint lengthens the wait, never shortens it; the steps grow as without it.
		if wait < hint {
			wait = hint
		}
		if hint > 0 {
			o.Logger.Printf("promproxy: %v; reconnecting in %v (retry hint %v)", err, wait.Round(time.Millisecond), hint)
		} else {
			o.Logger.Printf("promproxy: %v; reconnecting in %v", err, wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if delay *= 2; delay > maxDelay {
			delay = maxDelay
		}
	}
}

func dialTarget(server string) (string, grpc.DialOption, error) {
	u, err := url.Parse(server)
	if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", nil, fmt.Errorf("promproxy: Server must be an http:// or https:// URL, got %q", server)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	creds := grpc.WithInsecure()
	if u.Scheme == "https" {
		creds = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{ServerName: u.Hostname()}))
	}
	return net.JoinHostPort(u.Hostname(), port), creds, nil
}

// orDefault is d, or def when d is unset or not positive.
func orDefault(d *duration.Duration, def time.Duration) time.Duration {
	if v, err := ptypes.Duration(d); err == nil && v > 0 {
		return v
	}
	return def
}

// stream is one connection's Scrape stream and the scrapes in flight on it.
type stream struct {
	o        Options
	ctx      context.Context // ends with the stream
	out      chan *pb.ClientFrame
	sendDone chan struct{} // closed when the sender stopped: nothing more goes out
	maxChunk int
	scrapes  sync.Map // scrape id -> *scrape
	replica  string   // the replica id of its welcome (guarded by the fleet's mu)
	bye      chan struct{}
	byeOnce  sync.Once
	kill     context.CancelFunc
}

// goodbye ends the request stream cleanly (a half-close): the server ends its side, at the latest in 2 s we do.
func (s *stream) goodbye() {
	s.byeOnce.Do(func() {
		close(s.bye)
		time.AfterFunc(2*time.Second, s.kill)
	})
}

// connect runs one stream until it fails or ctx is done; it tells when the server welcomed it (zero: never), and the retry
// hint of its end (0: none). settled, when given, is called once: true when the stream holds a replica not held
// before, false otherwise (or at its end).
func connect(ctx context.Context, o Options, target string, creds grpc.DialOption, fl *fleet, settled func(found bool)) (welcomed time.Time, hint time.Duration, err error) {
	var once sync.Once
	settle := func(found bool) {
		if settled != nil {
			once.Do(func() { settled(found) })
		}
	}
	defer settle(false)
	conn, err := grpc.Dial(target, creds, grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}))
	if err != nil {
		return time.Time{}, 0, err
	}
	defer conn.Close()
	// Not ctx: on stop the stream is half-closed first, and the server ends it.
	sctx, kill := context.WithCancel(context.Background())
	defer kill()
	// Watchdog: no welcome in time (10 s, growing after attempts that timed out; a hanging dial included), or
	// nothing heard for 3 heartbeat intervals, ends the stream; so does a stop that the server does not answer
	// by ending the stream within 2 s.
	var lastHeard, silence atomic.Int64
	var greeted atomic.Bool
	lastHeard.Store(time.Now().UnixNano())
	welcomeWait := fl.waits.current()
	silence.Store(int64(welcomeWait))
	var dead atomic.Value
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		stopping := ctx.Done()
		for {
			select {
			case <-sctx.Done():
				return
			case <-stopping:
				stopping = nil
				time.AfterFunc(2*time.Second, kill)
			case <-tick.C:
				if quiet := time.Duration(time.Now().UnixNano() - lastHeard.Load()); quiet > time.Duration(silence.Load()) {
					if greeted.Load() {
						dead.Store(fmt.Errorf("nothing heard from the server for %v", quiet.Round(time.Second)))
					} else {
						fl.waits.timedOut() // the next attempt waits longer
						dead.Store(fmt.Errorf("no welcome from the server within %v", welcomeWait))
					}
					kill()
					return
				}
			}
		}
	}()

	why := func(err error) error {
		if d, ok := dead.Load().(error); ok {
			return d
		} else if err == io.EOF {
			return errors.New("the server ended the stream")
		}
		return err
	}
	call, err := pb.NewScrapeServiceClient(conn).Scrape(sctx)
	if err != nil {
		return time.Time{}, 0, why(err)
	}
	s := &stream{o: o, ctx: sctx, out: make(chan *pb.ClientFrame, 64), sendDone: make(chan struct{}), maxChunk: defaultChunk, bye: make(chan struct{}), kill: kill}
	defer fl.ended(s)
	// The replicas held are listed: a server among them refuses us as a step of the search.
	hello := &pb.Hello{Name: o.Name, Labels: o.Labels, Version: Version, Features: []string{"head", "replica-set"}, HeldReplicaIds: fl.heldIDs()}
	s.out <- &pb.ClientFrame{Frame: &pb.ClientFrame_Hello{Hello: hello}}

	go func() { // the one goroutine that sends: a gRPC stream allows no concurrent Send
		defer close(s.sendDone)
		for {
			select {
			case f := <-s.out:
				if call.Send(f) != nil {
					return // the stream is broken; Recv returns why
				}
			case <-ctx.Done():
				call.CloseSend() // the server delists the client and ends the stream
				return
			case <-s.bye:
				call.CloseSend()
				return
			case <-sctx.Done():
				return
			}
		}
	}()

	for {
		f, err := call.Recv()
		if err != nil {
			header, _ := call.Header()
			return welcomed, retryHint(call.Trailer(), header), why(err)
		}
		lastHeard.Store(time.Now().UnixNano())
		if welcomed.IsZero() {
			if f.Frame == nil {
				continue // a frame kind of a newer server: ignored, before the welcome too
			}
			w := f.GetWelcome()
			if w == nil {
				return time.Time{}, 0, fmt.Errorf("the server sent %T before its welcome", f.Frame)
			}
			welcomed = time.Now()
			greeted.Store(true)
			fl.waits.welcomed()
			if n := w.GetLimits().GetMaxChunkBytes(); n > 0 {
				s.maxChunk = int(n)
			}
			silence.Store(int64(3 * orDefault(w.HeartbeatInterval, defaultHeartbeat)))
			o.Logger.Printf("promproxy: connected to %s as %q (session %s, replica %s)", o.Server, o.Name, w.SessionId, w.ReplicaId)
			keep, found, err := fl.welcome(s, w)
			if err != nil {
				return welcomed, 0, err
			}
			if !keep {
				o.Logger.Printf("promproxy: closing the stream to replica %s: its own replica set does not give it %q", w.ReplicaId, o.Name)
				s.goodbye()
			}
			settle(found)
			continue
		}
		switch m := f.Frame.(type) {
		case *pb.ServerFrame_Order:
			s.start(m.Order)
		case *pb.ServerFrame_Credit:
			if sc := s.find(m.Credit.ScrapeId); sc != nil {
				sc.grant(m.Credit.Bytes)
			}
		case *pb.ServerFrame_Cancel:
			if sc := s.find(m.Cancel.ScrapeId); sc != nil {
				sc.cancelled.Store(true)
				sc.cancel()
			}
		case *pb.ServerFrame_Ping:
			s.send(&pb.ClientFrame{Frame: &pb.ClientFrame_Pong{Pong: &pb.Pong{Nonce: m.Ping.Nonce}}})
		case *pb.ServerFrame_ReplicaSet:
			if err := fl.replicaSet(s, m.ReplicaSet); err != nil {
				return welcomed, 0, err
			}
		} // other frames come from a newer server: ignored
	}
}

// send queues a frame for the sender; false once the stream is over.
func (s *stream) send(f *pb.ClientFrame) bool {
	select {
	case s.out <- f:
		return true
	case <-s.sendDone:
		return false
	}
}

func (s *stream) find(id uint64) *scrape {
	if sc, ok := s.scrapes.Load(id); ok {
		return sc.(*scrape)
	}
	return nil
}

// scrape is one order being served.
type scrape struct {
	ctx       context.Context // ends at the order's timeout, on cancel, or with the stream
	cancel    context.CancelFunc
	cancelled atomic.Bool  // by the server: send nothing more
	credit    atomic.Int64 // body bytes the server allows
	more      chan struct{}
}

// grant adds credit from the server.
func (sc *scrape) grant(n uint64) {
	sc.credit.Add(int64(n))
	select {
	case sc.more <- struct{}{}:
	default:
	}
}

// take waits for credit and takes up to n bytes of it. Only the scrape's goroutine takes; grant only adds.
func (sc *scrape) take(n int) (int, error) {
	for sc.credit.Load() <= 0 && sc.ctx.Err() == nil {
		select {
		case <-sc.more:
		case <-sc.ctx.Done():
		}
	}
	if c := sc.credit.Load(); int64(n) > c {
		n = int(c)
	}
	sc.credit.Add(-int64(n))
	return n, sc.ctx.Err()
}

func (s *stream) start(o *pb.ScrapeOrder) {
	timeout := orDefault(o.Timeout, defaultTimeout)
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	sc := &scrape{ctx: ctx, cancel: cancel, more: make(chan struct{}, 1)}
	sc.credit.Store(int64(o.CreditBytes))
	if _, dup := s.scrapes.LoadOrStore(o.ScrapeId, sc); dup { // a repeated id is the server's bug
		cancel()
		return
	}
	go func() {
		defer s.scrapes.Delete(o.ScrapeId)
		defer cancel()
		failure := s.serve(sc, o)
		if failure != nil && ctx.Err() == context.DeadlineExceeded {
			failure = &pb.ScrapeError{Reason: pb.ScrapeErrorReason_SCRAPE_ERROR_REASON_TIMEOUT, Message: fmt.Sprintf("scrape of %q timed out after %v", s.o.Name, timeout)}
		}
		if !sc.cancelled.Load() {
			s.send(&pb.ClientFrame{Frame: &pb.ClientFrame_End{End: &pb.ResultEnd{ScrapeId: o.ScrapeId, Error: failure}}})
		}
	}()
}

// serve answers one order with a head, then the body in chunks within the credit; nil on success.
func (s *stream) serve(sc *scrape, o *pb.ScrapeOrder) *pb.ScrapeError {
	fail := func(reason pb.ScrapeErrorReason, format string, args ...interface{}) *pb.ScrapeError {
		return &pb.ScrapeError{Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	if u, err := url.ParseRequestURI(o.Path); err != nil || u.Path != "/metrics" {
		return fail(pb.ScrapeErrorReason_SCRAPE_ERROR_REASON_NOT_FOUND, "client %q serves only /metrics, not %q", s.o.Name, o.Path)
	}
	h := http.Header{}
	for _, x := range o.Headers {
		h.Add(x.Name, x.Value)
	}
	done := make(chan rendered, 1)
	go func() { done <- render(s.o.Gatherer, h) }() // a slow collector must not outlast the timeout
	var r rendered
	select {
	case r = <-done:
	case <-sc.ctx.Done():
		return fail(pb.ScrapeErrorReason_SCRAPE_ERROR_REASON_CANCELLED, "%v", sc.ctx.Err())
	}
	if r.err != nil {
		return fail(pb.ScrapeErrorReason_SCRAPE_ERROR_REASON_INTERNAL, "client %q: gathering metrics failed: %v", s.o.Name, r.err)
	}
	head := &pb.ResultHead{ScrapeId: o.ScrapeId, Status: 200, Headers: append(r.headers,
		&pb.Header{Name: "content-length", Value: strconv.Itoa(len(r.body))})}
	if !s.send(&pb.ClientFrame{Frame: &pb.ClientFrame_Head{Head: head}}) || o.Method == "HEAD" {
		return nil
	}
	for body := r.body; len(body) > 0; {
		n := len(body)
		if n > s.maxChunk {
			n = s.maxChunk
		}
		n, err := sc.take(n)
		if err != nil {
			return fail(pb.ScrapeErrorReason_SCRAPE_ERROR_REASON_CANCELLED, "%v", err)
		}
		if sc.cancelled.Load() || !s.send(&pb.ClientFrame{Frame: &pb.ClientFrame_Chunk{Chunk: &pb.ResultChunk{ScrapeId: o.ScrapeId, Data: body[:n]}}}) {
			return nil
		}
		body = body[n:]
	}
	return nil
}

type rendered struct {
	headers []*pb.Header // content-type, and content-encoding when gzipped
	body    []byte
	err     error
}

// render gathers and encodes in the format the request accepts (text or OpenMetrics), gzipped if accepted.
func render(g prometheus.Gatherer, h http.Header) (r rendered) {
	mfs, err := g.Gather()
	if err != nil {
		return rendered{err: err}
	}
	format := expfmt.NegotiateIncludingOpenMetrics(h)
	r.headers = []*pb.Header{{Name: "content-type", Value: string(format)}}
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	for _, part := range strings.Split(h.Get("Accept-Encoding"), ",") {
		if p := strings.TrimSpace(part); zw == nil && (p == "gzip" || strings.HasPrefix(p, "gzip;")) {
			zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
			w = zw
			r.headers = append(r.headers, &pb.Header{Name: "content-encoding", Value: "gzip"})
		}
	}
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range mfs {
		if r.err = enc.Encode(mf); r.err != nil {
			return r
		}
	}
	if r.err = enc.(expfmt.Closer).Close(); r.err == nil && zw != nil {
		r.err = zw.Close()
	}
	r.body = buf.Bytes()
	return r
}
