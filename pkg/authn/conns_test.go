package authn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc/peer"
)

// gatedServer accepts on a gated loopback listener and hands each accepted
// connection to the test.
func gatedServer(t *testing.T, r *TokenReviewer) (addr string, accepted chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := r.Listener(l)
	accepted = make(chan net.Conn, 100)
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() { gl.Close() })
	return l.Addr().String(), accepted
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func acceptWithin(t *testing.T, accepted chan net.Conn, d time.Duration) (net.Conn, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case c := <-accepted:
		return c, time.Since(start)
	case <-time.After(d):
		return nil, d
	}
}

func TestListenerHoldsAndClosesConnectionsOverBudget(t *testing.T) {
	r := NewTokenReviewer(nil, ReviewOptions{SourceRate: 10, SourceBurst: 3, MaxHeldConns: 2})
	addr, accepted := gatedServer(t, r)
	src := netip.MustParsePrefix("127.0.0.1/32")

	// In good standing: at once, and the budget is untouched.
	dial(t, addr)
	c, took := acceptWithin(t, accepted, 2*time.Second)
	if c == nil || took > time.Second {
		t.Fatalf("connection from an address in good standing: accepted after %s", took)
	}
	if tok := r.sources.tokens(src, time.Now()); tok < 3 {
		t.Fatalf("accepting a connection in good standing cost budget: %v tokens left", tok)
	}

	// A call refused over budget closes its connection.
	for r.sources.allow(src, time.Now()) {
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: c.RemoteAddr()})
	_, err := r.Authenticate(ctx) // no token, over budget
	if Reason(err) != "no_token" {
		t.Fatalf("Authenticate: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the connection of a call refused over budget is still open (read: %v)", err)
	}

	// New connections wait for the budget, one token each; beyond
	// MaxHeldConns waiting they are closed at once.
	for r.sources.allow(src, time.Now()) {
	}
	waiting := []net.Conn{dial(t, addr), dial(t, addr)}
	time.Sleep(50 * time.Millisecond) // both queued before the third
	dropped := dial(t, addr)
	if err := dropped.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := dropped.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a connection beyond MaxHeldConns waiting: read %v, want EOF (closed at once)", err)
	}
	for i := range waiting {
		c, took := acceptWithin(t, accepted, 2*time.Second)
		if c == nil {
			t.Fatalf("waiting connection %d never released", i)
		}
		if took < 20*time.Millisecond {
			t.Fatalf("waiting connection %d released after %s: it did not wait for the budget (10/s)", i, took)
		}
	}
	if tok := r.sources.tokens(src, time.Now()); tok >= 1 {
		t.Fatalf("released connections took no budget: %v tokens", tok)
	}
}

func TestListenerCloseClosesWaitingConnections(t *testing.T) {
	r := NewTokenReviewer(nil, ReviewOptions{SourceRate: 0.01, SourceBurst: 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := r.Listener(l)
	r.sources.allow(netip.MustParsePrefix("127.0.0.1/32"), time.Now())
	c := dial(t, l.Addr().String())
	time.Sleep(50 * time.Millisecond)
	if err := gl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := gl.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("waiting connection after Close: read %v, want EOF", err)
	}
}
