package xds

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// GRPCServerOptions are the options of every gRPC server that serves mizzen's
// ADS (the plaintext and the secure port): the codec that splices shared
// resource bytes (Codec), room for every proxy's stream, keepalives that
// find dead proxies, and fixed 1 MiB receive windows (as istiod's). A fixed
// window also turns off gRPC's bandwidth-delay estimation, which answered a
// proxy's ACKs with a PING of its own, one more write and read per proxy
// and change: an endpoint change at 1,000 file-mode proxies took 0.16-0.18
// CPU-s before, 0.12-0.13 after. (grpc.SharedWriteBuffer was tried for memory per proxy:
// no measurable change in RSS after 1,000 proxies warmed up, so it is not set.)
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec{}),
		grpc.MaxConcurrentStreams(100000),
		grpc.KeepaliveParams(serverKeepalive()),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.InitialWindowSize(1 << 20),
		grpc.InitialConnWindowSize(1 << 20),
	}
}

func serverKeepalive() keepalive.ServerParameters {
	return keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}
}

// SecureGRPCServerOptions are GRPCServerOptions plus istiod's limit on the
// age of a connection to the secure port: after maxAge (gRPC adds ±10%
// jitter, so a fleet that connected together does not reconnect together)
// the server sends GOAWAY, and after grace more it closes the connection. A
// proxy then reconnects and proves its identity afresh, so no connection
// outlives a credential by more than that, whatever the re-checks.
//
// Anyone can open connections to the secure port, so an idle connection
// must cost little: gRPC's 32 KiB read buffer per connection is dropped (the
// TLS connection buffers a whole record already) and the write buffer is
// taken from a pool only while writing. With 1,000 garbage callers connected
// that is ~64 MiB less live heap (TestCSRLoadGarbageTokens).
func SecureGRPCServerOptions(maxAge, grace time.Duration) []grpc.ServerOption {
	kp := serverKeepalive()
	kp.MaxConnectionAge, kp.MaxConnectionAgeGrace = maxAge, grace
	// The later KeepaliveParams replaces the earlier one.
	return append(GRPCServerOptions(), grpc.KeepaliveParams(kp), grpc.ReadBufferSize(0), grpc.SharedWriteBuffer(true))
}
