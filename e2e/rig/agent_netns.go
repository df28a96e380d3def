package rig

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// DialInside opens a TCP connection from inside the pod's network namespace,
// so the test reaches what only listens on the pod's loopback — pilot-agent's
// Envoy keeps its admin on 127.0.0.1:15000, as in a real pod. The socket is
// created on an OS thread switched into the pod's namespace for that one call
// (and switched back before the thread is released), so it belongs to the pod
// while the test's other goroutines stay in the root namespace. The process
// dialing is the test binary (root), which the capture rules let through to
// 127.0.0.1 like any local process.
func (p *Pod) DialInside(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, err, restored := dialInNetNS(ctx, filepath.Join("/run/netns", p.NetNS), network, addr)
		if restored {
			runtime.UnlockOSThread()
		} // else: the thread stays locked and ends with this goroutine, its namespace never reused
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// dialInNetNS runs on a locked OS thread: enter the namespace at nsPath, dial,
// return to the thread's original namespace. restored is false if returning
// failed (the caller must then not unlock the thread).
func dialInNetNS(ctx context.Context, nsPath, network, addr string) (c net.Conn, err error, restored bool) {
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		return nil, err, true
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, err, true
	}
	defer target.Close()
	if err := setns(int(target.Fd())); err != nil {
		return nil, fmt.Errorf("entering %s: %v", nsPath, err), true
	}
	c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if rerr := setns(int(orig.Fd())); rerr != nil {
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("returning from %s: %v", nsPath, rerr), false
	}
	return c, err, true
}

// setns(2)'s number per architecture (Go's syscall package has no SYS_SETNS
// on every port, and golang.org/x/sys is not a direct dependency).
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268, "386": 346, "arm": 375, "riscv64": 268, "ppc64le": 350, "s390x": 339}

func setns(fd int) error {
	nr, ok := sysSetns[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("setns: unknown syscall number on %s", runtime.GOARCH)
	}
	if _, _, errno := syscall.RawSyscall(nr, uintptr(fd), uintptr(syscall.CLONE_NEWNET), 0); errno != 0 {
		return errno
	}
	return nil
}

// HTTPClientInside is an HTTP client whose connections are opened inside the
// pod's network namespace (DialInside): URLs name addresses as the pod sees
// them, e.g. http://127.0.0.1:15000/config_dump.
func (p *Pod) HTTPClientInside(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:         p.DialInside,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     10 * time.Second,
		DisableCompression:  true,
	}}
}
