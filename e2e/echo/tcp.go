package echo

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// TCPGreeting is the line a TCP echo server writes on every new connection,
// before anything else (a server-first protocol), so a client learns which
// backend its connection reached without sending a byte.
type TCPGreeting struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Pod     string `json:"pod"`
	// Request is this connection's number on this server (port), from 1.
	Request    int64  `json:"request"`
	RemoteAddr string `json:"remote_addr"`
}

// TCPServer is a running TCP echo server: it greets every connection with one
// JSON line (TCPGreeting) and then echoes back what it reads until the peer
// closes, or the connection is idle for TCPIdleTimeout.
type TCPServer struct {
	Addr string

	opts  Options
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  map[net.Conn]bool
}

// TCPIdleTimeout ends an echo connection nothing was sent on for that long.
const TCPIdleTimeout = 30 * time.Second

// StartTCP listens on addr and serves until Close.
func StartTCP(addr string, opts Options) (*TCPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &TCPServer{Addr: ln.Addr().String(), opts: opts, ln: ln, open: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *TCPServer) serve() {
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
		s.mu.Lock()
		s.open[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.handle(c)
	}
}

func (s *TCPServer) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
		c.Close()
	}()
	n := s.conns.Add(1)
	if s.opts.Delay > 0 {
		time.Sleep(s.opts.Delay)
	}
	g, _ := json.Marshal(&TCPGreeting{Service: s.opts.Service, Version: s.opts.Version, Pod: s.opts.Pod,
		Request: n, RemoteAddr: c.RemoteAddr().String()})
	_ = c.SetWriteDeadline(time.Now().Add(TCPIdleTimeout))
	if _, err := c.Write(append(g, '\n')); err != nil {
		return
	}
	r := bufio.NewReader(c)
	buf := make([]byte, 32*1024)
	for {
		_ = c.SetDeadline(time.Now().Add(TCPIdleTimeout))
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := c.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Connections is the number of connections accepted so far.
func (s *TCPServer) Connections() int64 { return s.conns.Load() }

// Close stops listening and closes open connections.
func (s *TCPServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
