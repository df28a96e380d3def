package loadclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// h2TestADS answers the first delta request with a response of big bytes
// (more than the client's window) naming how many names it was asked for,
// then ends the stream with PermissionDenied.
type h2TestADS struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	resources, nameLen int
}

func (a h2TestADS) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	req, err := st.Recv()
	if err != nil {
		return err
	}
	resp := &discovery.DeltaDiscoveryResponse{TypeUrl: TypeEDS, SystemVersionInfo: fmt.Sprint(len(req.GetResourceNamesSubscribe())), Nonce: "n1"}
	for i := range a.resources {
		name := fmt.Sprintf("%d-%s", i, strings.Repeat("x", a.nameLen))
		cla, err := anypb.New(&endpointv3.ClusterLoadAssignment{ClusterName: name})
		if err != nil {
			return err
		}
		resp.Resources = append(resp.Resources, &discovery.Resource{Name: name, Version: "1", Resource: cla})
	}
	if err := st.Send(resp); err != nil {
		return err
	}
	if _, err := st.Recv(); err != nil { // the ACK
		return err
	}
	return status.Error(codes.PermissionDenied, "go away")
}

// dialH2TestADS serves ads on gRPC's own server (its default settings: a
// 64 KiB window to start with) and opens a lean stream to it, both closed
// when the test ends.
func dialH2TestADS(t *testing.T, ads h2TestADS, maxRecv int) *h2Stream {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, ads)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	codec, err := newLeanCodec()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	s, err := dialH2Stream(ctx, lis.Addr().String(), codec, 1<<20, maxRecv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The lean transport against gRPC's own server (default settings: a 64 KiB
// window to start with): a request larger than the server's window, a
// response of 3 MB over a 1 MiB window, an ACK, and the server's status.
func TestH2StreamFlowControlAndStatus(t *testing.T) {
	s := dialH2TestADS(t, h2TestADS{resources: 3000, nameLen: 1000}, 256<<20)

	req := &discovery.DeltaDiscoveryRequest{TypeUrl: TypeEDS}
	for i := range 5000 {
		req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, fmt.Sprintf("outbound|8080||svc-%04d.default.svc.cluster.local", i))
	}
	if err := s.SendMsg(req); err != nil {
		t.Fatalf("sending a %d-name subscription: %v", len(req.ResourceNamesSubscribe), err)
	}
	var r leanDelta
	if err := s.RecvMsg(&r); err != nil {
		t.Fatalf("receiving the response: %v", err)
	}
	if r.sysVer != "5000" || len(r.resources) != 3000 || r.nonce != "n1" || r.size < 3_000_000 {
		t.Fatalf("got version %q, %d resources, nonce %q, %d bytes; want 5000, 3000, n1, > 3 MB", r.sysVer, len(r.resources), r.nonce, r.size)
	}
	if got := r.resources[2999].name.Value(); !strings.HasPrefix(got, "2999-x") {
		t.Fatalf("last resource named %.10q…", got)
	}
	if err := s.SendMsg(&discovery.DeltaDiscoveryRequest{TypeUrl: TypeEDS, ResponseNonce: "n1"}); err != nil {
		t.Fatal(err)
	}
	err := s.RecvMsg(&r)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "go away") {
		t.Fatalf("after the ACK: %v, want the server's PermissionDenied", err)
	}
}

// A dial to nothing fails; a stream whose context ends is closed under its
// blocked read.
func TestH2StreamEnds(t *testing.T) {
	codec, err := newLeanCodec()
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, then never answer
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := dialH2Stream(ctx, addr, codec, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { var r leanDelta; done <- s.RecvMsg(&r) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("RecvMsg returned no error after the context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RecvMsg still blocked 5 s after the context ended")
	}
	lis.Close()
	if _, err := dialH2Stream(context.Background(), addr, codec, 1<<20, 1<<20); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("dial to a closed port: %v, want a connection error", err)
	}
}

// An empty message (every field at its default) is a 5-byte DATA frame.
func TestH2StreamSendsAnEmptyMessage(t *testing.T) {
	s := dialH2TestADS(t, h2TestADS{resources: 1}, 1<<20)
	if err := s.SendMsg(&discovery.DeltaDiscoveryRequest{}); err != nil {
		t.Fatal(err)
	}
	var r leanDelta
	if err := s.RecvMsg(&r); err != nil || r.sysVer != "0" || len(r.resources) != 1 {
		t.Fatalf("got %v, version %q, %d resources; want the answer to an empty request", err, r.sysVer, len(r.resources))
	}
}
