package echo

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// GRPCServer is a running gRPC echo server: the standard health service
// (grpc.health.v1.Health, every service SERVING), whose answers carry who
// answered in their header metadata (x-echo-version, x-echo-service,
// x-echo-pod, and x-echo-request: the call's number on this server, from 1).
// Plaintext HTTP/2 (h2c), as an app behind a sidecar serves.
type GRPCServer struct {
	Addr string

	srv   *grpc.Server
	calls atomic.Int64
	done  chan struct{}
}

// HeaderRequest is the gRPC header metadata key of a call's number.
const HeaderRequest = "x-echo-request"

// GRPCHealthMethod is the method the gRPC echo client calls.
const GRPCHealthMethod = "/grpc.health.v1.Health/Check"

// StartGRPC listens on addr and serves until Close.
func StartGRPC(addr string, opts Options) (*GRPCServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &GRPCServer{Addr: ln.Addr().String(), done: make(chan struct{})}
	tag := func(ctx context.Context) {
		n := s.calls.Add(1)
		_ = grpc.SetHeader(ctx, metadata.Pairs(HeaderVersion, opts.Version, HeaderService, opts.Service,
			HeaderPod, opts.Pod, HeaderRequest, strconv.FormatInt(n, 10)))
	}
	s.srv = grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			tag(ctx)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			tag(ss.Context())
			return h(srv, ss)
		}),
	)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.srv, hs)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Calls is the number of calls served so far.
func (s *GRPCServer) Calls() int64 { return s.calls.Load() }

// Close stops the server at once.
func (s *GRPCServer) Close() {
	s.srv.Stop()
	<-s.done
}

// GracefulStop waits for calls in flight.
func (s *GRPCServer) GracefulStop() {
	s.srv.GracefulStop()
	<-s.done
}
