package authn

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/grpc/peer"
)

// A connection costs the server far more than a refused call: TLS state,
// gRPC's transport with three goroutines, ~50 KB in all. So when an address
// is over its budget of unauthenticated calls, the connection of its next
// refused call is closed, and its new connections wait, before their TLS
// handshake, until its budget has a token again (taking it). An address that
// floods then holds at most a few live connections, reconnects (and
// handshakes) at most at its budget's rate, and its waiting connections cost
// only their sockets. Addresses in good standing never wait.

// Listener wraps the secure port's listener with that policy; Authenticate
// closes the connections it accepted. Close the returned listener to stop it.
func (r *TokenReviewer) Listener(l net.Listener) net.Listener {
	gl := &gatedListener{Listener: l, r: r, ready: make(chan net.Conn), errs: make(chan error, 1),
		done: make(chan struct{}), queues: map[netip.Prefix]*connQueue{}}
	r.connsMu.Lock()
	r.listener = gl
	r.connsMu.Unlock()
	go gl.acceptLoop()
	return gl
}

type gatedListener struct {
	net.Listener
	r     *TokenReviewer
	ready chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once

	mu     sync.Mutex
	held   int
	queues map[netip.Prefix]*connQueue
	open   map[string]*trackedConn // by remote address
}

// connQueue holds the connections of one address waiting for its budget.
type connQueue struct {
	conns []net.Conn
	timer *time.Timer
}

func (gl *gatedListener) Accept() (net.Conn, error) {
	select {
	case c := <-gl.ready:
		return c, nil
	case err := <-gl.errs:
		return nil, err
	case <-gl.done:
		return nil, net.ErrClosed
	}
}

func (gl *gatedListener) Close() error {
	gl.once.Do(func() { close(gl.done) })
	err := gl.Listener.Close()
	gl.mu.Lock()
	defer gl.mu.Unlock()
	for src, q := range gl.queues {
		q.timer.Stop()
		for _, c := range q.conns {
			c.Close()
		}
		delete(gl.queues, src)
	}
	gl.held = 0
	return err
}

// acceptLoop accepts until the listener fails for good (that error goes to
// Accept). A temporary failure (out of file descriptors) is retried with
// backoff here, as net/http does, so the port outlives it.
func (gl *gatedListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := gl.Listener.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-gl.done:
					return
				}
			}
			select {
			case gl.errs <- err:
			case <-gl.done:
			}
			return
		}
		backoff = 0
		gl.admit(c)
	}
}

// admit releases c at once if its address is in good standing, else queues
// it until its budget has a token; beyond MaxHeldConns waiting it is closed.
func (gl *gatedListener) admit(c net.Conn) {
	src := prefixOf(c.RemoteAddr())
	gl.mu.Lock()
	q := gl.queues[src]
	if q == nil && gl.r.sources.tokens(src, gl.r.o.Now()) >= 1 {
		gl.mu.Unlock()
		gl.release(c)
		return
	}
	if gl.held >= gl.r.o.MaxHeldConns {
		gl.mu.Unlock()
		gl.r.o.Metrics.throttle("conn_dropped")
		c.Close()
		return
	}
	gl.held++
	gl.r.o.Metrics.throttle("conn_delayed")
	if q != nil {
		q.conns = append(q.conns, c)
		gl.mu.Unlock()
		return
	}
	q = &connQueue{conns: []net.Conn{c}}
	gl.queues[src] = q
	q.timer = time.AfterFunc(gl.r.sources.untilToken(src, gl.r.o.Now()), func() { gl.drain(src) })
	gl.mu.Unlock()
}

// drain releases the connections of src its budget now allows.
func (gl *gatedListener) drain(src netip.Prefix) {
	gl.mu.Lock()
	q := gl.queues[src]
	if q == nil {
		gl.mu.Unlock()
		return
	}
	var out []net.Conn
	now := gl.r.o.Now()
	for len(q.conns) > 0 && gl.r.sources.allow(src, now) {
		out = append(out, q.conns[0])
		q.conns = q.conns[1:]
	}
	gl.held -= len(out)
	if len(q.conns) == 0 {
		delete(gl.queues, src)
	} else {
		q.timer.Reset(gl.r.sources.untilToken(src, now))
	}
	gl.mu.Unlock()
	for _, c := range out {
		gl.release(c)
	}
}

// release hands c to the server, tracked so it can be closed.
func (gl *gatedListener) release(c net.Conn) {
	tc := &trackedConn{Conn: c, gl: gl, key: c.RemoteAddr().String()}
	gl.mu.Lock()
	if gl.open == nil {
		gl.open = map[string]*trackedConn{}
	}
	gl.open[tc.key] = tc
	gl.mu.Unlock()
	select {
	case gl.ready <- tc:
	case <-gl.done:
		tc.Close()
	}
}

// closeConn closes the accepted connection with remote address addr.
func (gl *gatedListener) closeConn(addr string) bool {
	gl.mu.Lock()
	tc := gl.open[addr]
	gl.mu.Unlock()
	if tc == nil {
		return false
	}
	tc.Close()
	return true
}

type trackedConn struct {
	net.Conn
	gl   *gatedListener
	key  string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.gl.mu.Lock()
		if c.gl.open[c.key] == c {
			delete(c.gl.open, c.key)
		}
		c.gl.mu.Unlock()
	})
	return c.Conn.Close()
}

// dropConn closes the connection of the call in ctx, if Listener accepted it.
func (r *TokenReviewer) dropConn(ctx context.Context) {
	r.connsMu.Lock()
	gl := r.listener
	r.connsMu.Unlock()
	p, ok := peer.FromContext(ctx)
	if gl == nil || !ok || p.Addr == nil {
		return
	}
	if gl.closeConn(p.Addr.String()) {
		r.o.Metrics.throttle("conn_closed")
	}
}
