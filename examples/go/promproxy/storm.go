package promproxy

// The two rules that let a reconnect storm of thousands of clients settle (PROTOCOL.md "Retry hint" and
// "Smaller rules"): a refusal's retry hint lengthens the next wait, and the wait for a welcome grows after
// attempts that got none in time, so that a slowed server finishes the handshakes it has begun.

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
)

const (
	retryAfterKey     = "promproxy-retry-after-ms" // the retry hint: milliseconds, 1 to 10 decimal digits
	maxWelcomeTimeout = 60 * time.Second
)

var hintDigits = regexp.MustCompile(`^[0-9]{1,10}$`)

// retryHint is the wait a refusal's metadata (its trailers, then its headers) asks for, clamped to the backoff's
// bounds [firstDelay, maxDelay]: a hint of 0 still waits firstDelay, an hour waits maxDelay. 0 when there is
// none, or it is not one value of 1 to 10 digits (a sign, a unit, a fraction, two values): the backoff runs.
func retryHint(mds ...metadata.MD) time.Duration {
	for _, md := range mds {
		v := md.Get(retryAfterKey)
		if len(v) == 0 {
			continue
		}
		s := strings.TrimSpace(v[0])
		if len(v) > 1 || !hintDigits.MatchString(s) {
			return 0
		}
		ms, _ := strconv.ParseInt(s, 10, 64) // 10 digits fit
		d := time.Duration(ms) * time.Millisecond
		if d < firstDelay {
			return firstDelay
		} else if d > maxDelay {
			return maxDelay
		}
		return d
	}
	return 0
}

// patience is how long the client waits for a welcome, over all its streams: welcomeTimeout at first, twice as
// long after each attempt that gave up waiting (up to maxWelcomeTimeout), welcomeTimeout again after a welcome.
type patience struct {
	mu sync.Mutex
	d  time.Duration
}

func newPatience() *patience { return &patience{d: welcomeTimeout} }

func (p *patience) current() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.d
}

// timedOut: an attempt gave up waiting for its welcome; the next one waits twice as long, within the bound.
func (p *patience) timedOut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d *= 2; p.d > maxWelcomeTimeout {
		p.d = maxWelcomeTimeout
	}
}

func (p *patience) welcomed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.d = welcomeTimeout
}
