package echo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// MuxServer serves HTTP (HTTP/1.x and h2c) and the TCP echo on one port, the
// way an app behind a sniffed Service port may be reached by all kinds of
// clients: a connection whose first bytes look like HTTP is served as HTTP;
// one that sends something else first is greeted and echoed (client-first
// TCP); one that sends nothing for MuxWait is greeted (server-first TCP).
type MuxServer struct {
	Addr string

	ln   net.Listener
	http *Server
	tcp  *TCPServer
	feed *chanListener
	wg   sync.WaitGroup
}

// MuxWait is how long a mux server waits for a client's first bytes before it
// takes the connection for a server-first one.
const MuxWait = 150 * time.Millisecond

// StartMux listens on addr and serves until Close. HTTP requests and TCP
// connections count separately (Requests, Connections).
func StartMux(addr string, opts Options) (*MuxServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	feed := &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	s := &MuxServer{Addr: ln.Addr().String(), ln: ln, feed: feed,
		http: serve(feed, "http://", opts),
		tcp:  &TCPServer{Addr: ln.Addr().String(), opts: opts, open: map[net.Conn]bool{}}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *MuxServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.dispatch(c)
		}()
	}
}

func (s *MuxServer) dispatch(c net.Conn) {
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(MuxWait))
	_, err := br.Peek(1)
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		c.Close()
		return
	}
	if err == nil && looksLikeHTTP(br) {
		select {
		case s.feed.conns <- pc:
		case <-s.feed.done:
			c.Close()
		}
		return
	}
	s.tcp.mu.Lock()
	s.tcp.open[pc] = true
	s.tcp.mu.Unlock()
	s.tcp.wg.Add(1)
	s.tcp.handle(pc)
}

// looksLikeHTTP: an HTTP/2 preface, or an upper-case token and a space (a
// request line) in what has arrived.
func looksLikeHTTP(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	if bytes.HasPrefix(b, []byte("PRI * HTTP/2")) {
		return true
	}
	for i, ch := range b {
		switch {
		case ch == ' ':
			return i > 0
		case ch < 'A' || ch > 'Z':
			return false
		}
	}
	return false
}

// Requests is the number of HTTP requests served, Connections the number of
// TCP echo connections.
func (s *MuxServer) Requests() int64    { return s.http.Requests() }
func (s *MuxServer) Connections() int64 { return s.tcp.Connections() }

// Close stops listening and closes open connections.
func (s *MuxServer) Close() error {
	err := s.ln.Close()
	s.feed.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	_ = s.http.Close()
	s.tcp.mu.Lock()
	for c := range s.tcp.open {
		c.Close()
	}
	s.tcp.mu.Unlock()
	s.wg.Wait()
	s.tcp.wg.Wait()
	return err
}

// peekedConn reads what was peeked first.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener hands the HTTP server the connections the mux classified.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
