package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/cmd/csrload/loadgen"
)

// fakeCA answers CSRs with token "good" and refuses every other.
type fakeCA struct {
	pb.UnimplementedIstioCertificateServiceServer
}

func (fakeCA) CreateCertificate(ctx context.Context, _ *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer good" {
		return nil, status.Error(codes.Unauthenticated, "bad token")
	}
	return &pb.IstioCertificateResponse{CertChain: []string{"cert"}}, nil
}

func TestRun(t *testing.T) {
	ca, err := certs.LoadOrCreate(context.Background(), certs.FileStore{Dir: t.TempDir()}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServingTLSCertificate([]string{"istiod.istio-system.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	pb.RegisterIstioCertificateServiceServer(g, fakeCA{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	dir := t.TempDir()
	rootFile, tokenFile := filepath.Join(dir, "root.pem"), filepath.Join(dir, "token")
	if err := os.WriteFile(rootFile, ca.RootCertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("good\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd := newCommand(&out, &errOut)
	cmd.SetArgs([]string{"--target", lis.Addr().String(), "--ca-file", rootFile, "--callers", "20", "--duration", "1s",
		"--legit-token-file", tokenFile, "--legit-interval", "50ms", "--garbage-sources", "127.0.0.2,127.0.0.3",
		"--legit-source", "127.0.0.1", "--pid", "1", "--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("csrload: %v\n%s", err, errOut.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	if rep.LegitCalls < 10 || rep.LegitFailures != 0 || rep.LegitP99Ms <= 0 {
		t.Fatalf("legit: %d calls, %d failures, p99 %v ms; want ≥ 10 calls, none failed", rep.LegitCalls, rep.LegitFailures, rep.LegitP99Ms)
	}
	if rep.GarbageCalls["Unauthenticated"] < 20 || rep.GarbageCalls["OK"] != 0 || rep.Connected != 20 {
		t.Fatalf("garbage outcomes %v, %d callers answered; want only Unauthenticated from all 20", rep.GarbageCalls, rep.Connected)
	}
	if rep.RSSIdle == 0 || rep.RSSPeak < rep.RSSIdle {
		t.Fatalf("RSS of pid 1 not sampled: %+v", rep)
	}
	printReport(&out, &rep)
	if !strings.Contains(out.String(), "legit:") || !strings.Contains(out.String(), "garbage:") {
		t.Fatalf("text report:\n%s", out.String())
	}
}
