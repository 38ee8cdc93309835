package promproxy

// The replica set (feature "replica-set", PROTOCOL.md "The replica set"), in its simplest correct form: the
// streams held by replica id, the replicas the latest set (from any stream) assigns this client, and a search
// through the one address for the ones not held. Each stream follows its own replica's set only.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "promproxy-example/promproxyv1"
)

const (
	maxReplicas    = 64  // the most ids a set may name; more is a protocol error
	maxReplicaID   = 128 // the longest replica id
	firstSearch    = 100 * time.Millisecond
	maxSearchPause = 10 * time.Second // while a replica of the set is missing, search attempts are at most this far apart
)

// assigned is the replicas of the set ids that client name holds: all when k is 0 or at least their number,
// else the k of highest rendezvous weight (first 8 bytes of SHA-256(name 0x00 id), big-endian; equal weights:
// the smaller id first).
func assigned(name string, ids []string, k uint32) map[string]bool {
	out := map[string]bool{}
	sorted := append([]string(nil), ids...)
	if k > 0 && int(k) < len(ids) {
		weight := func(id string) uint64 {
			sum := sha256.Sum256([]byte(strings.ToLower(name) + "\x00" + id))
			return binary.BigEndian.Uint64(sum[:8])
		}
		sort.Slice(sorted, func(i, j int) bool {
			wi, wj := weight(sorted[i]), weight(sorted[j])
			if wi != wj {
				return wi > wj
			}
			return sorted[i] < sorted[j]
		})
		sorted = sorted[:k]
	}
	for _, id := range sorted {
		out[id] = true
	}
	return out
}

// fleet is what the client's streams share.
type fleet struct {
	name    string
	mu      sync.Mutex
	held    map[string]*stream // replica id -> the stream held to it
	wanted  map[string]bool    // the replicas the latest set assigns this client; nil: no set known
	changed chan struct{}      // a note (capacity 1) that held or wanted changed
	waits   *patience          // the wait for a welcome, over all the client's streams
}

func newFleet(name string) *fleet {
	return &fleet{name: name, held: map[string]*stream{}, changed: make(chan struct{}, 1), waits: newPatience()}
}

func (f *fleet) notify() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// check is the replicas a set assigns this client (nil for no set), or a protocol error for a bad set.
func (f *fleet) check(ids []string, k uint32, own *string) (map[string]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > maxReplicas {
		return nil, fmt.Errorf("the server announced a replica set of %d ids, more than %d", len(ids), maxReplicas)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || len(id) > maxReplicaID || seen[id] {
			return nil, fmt.Errorf("the server announced a replica set with an empty, over-%d-character or repeated id", maxReplicaID)
		}
		seen[id] = true
	}
	if own != nil && !seen[*own] {
		return nil, fmt.Errorf("the welcome's replica set lacks its own replica %q", *own)
	}
	return assigned(f.name, ids, k), nil
}

// follow makes mine (a set's replicas for this client) the ones wanted. Called with mu held.
func (f *fleet) follow(mine map[string]bool) {
	if mine == nil || sameSet(mine, f.wanted) && f.wanted != nil {
		return
	}
	f.wanted = mine
	f.notify()
}

// welcome records a welcome on s; keep is false when its own set does not give it this client (it is closed),
// found true when it is a replica not held before.
func (f *fleet) welcome(s *stream, w *pb.Welcome) (keep, found bool, err error) {
	mine, err := f.check(w.ReplicaIds, w.ReplicasPerClient, &w.ReplicaId)
	if err != nil {
		return false, false, err
	}
	if mine != nil && !mine[w.ReplicaId] {
		return false, false, nil // it should have refused the hello: closed, its set not believed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.follow(mine)
	if w.ReplicaId != "" {
		old := f.held[w.ReplicaId]
		if old != nil && old != s {
			old.goodbye() // the server welcomes a second stream for our name only once the first is dead
		}
		f.held[w.ReplicaId] = s
		s.replica = w.ReplicaId
		f.notify()
		return true, old == nil, nil
	}
	return true, false, nil
}

// replicaSet takes a ReplicaSet frame on s: s is closed when its own replica's set no longer gives it this client.
func (f *fleet) replicaSet(s *stream, rs *pb.ReplicaSet) error {
	mine, err := f.check(rs.ReplicaIds, rs.ReplicasPerClient, nil)
	if err != nil || mine == nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.replica != "" && !mine[s.replica] {
		s.o.Logger.Printf("promproxy: closing the stream to replica %s: its own replica set no longer gives it %q", s.replica, s.o.Name)
		s.goodbye()
	}
	f.follow(mine)
	return nil
}

// ended forgets s.
func (f *fleet) ended(s *stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.replica != "" && f.held[s.replica] == s {
		delete(f.held, s.replica)
		f.notify()
	}
}

// holding is how many replicas a stream is held to.
func (f *fleet) holding() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

func (f *fleet) heldIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.held))
	for id := range f.held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// missing tells whether a replica the latest set assigns this client is not held.
func (f *fleet) missing() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.wanted {
		if f.held[id] == nil {
			return true
		}
	}
	return false
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for id := range a {
		if !b[id] {
			return false
		}
	}
	return true
}

// search opens a new stream (through a balancer it lands on some replica) while a replica the latest set
// assigns this client is not held: at once when the set changes, then 0.1 s doubling to at most 10 s apart, for
// as long as one is missing. A refusal (a replica held, or one not assigned) is a step of the search.
func search(ctx context.Context, o Options, target string, creds grpc.DialOption, f *fleet, streams *sync.WaitGroup) {
	jitter := rand.New(rand.NewSource(time.Now().UnixNano()))
	delay := firstSearch
	for ctx.Err() == nil {
		select { // the note is taken before looking, so a change meanwhile is not lost
		case <-f.changed:
		default:
		}
		if !f.missing() {
			select {
			case <-ctx.Done():
				return
			case <-f.changed:
			}
			delay = firstSearch
			continue
		}
		found := make(chan bool, 1)
		streams.Add(1)
		go func() {
			defer streams.Done()
			_, _, err := connect(ctx, o, target, creds, f, func(ok bool) { found <- ok })
			if err != nil && ctx.Err() == nil {
				o.Logger.Printf("promproxy: search stream: %v", err)
			}
		}()
		select {
		case <-ctx.Done():
			return
		case ok := <-found:
			if ok {
				delay = firstSearch // found one: look for the next at once
				continue
			}
		}
		wait := delay/2 + time.Duration(jitter.Int63n(int64(delay/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-f.changed:
			delay = firstSearch
		case <-time.After(wait):
			if delay *= 2; delay > maxSearchPause {
				delay = maxSearchPause
			}
		}
	}
}
