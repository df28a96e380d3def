package echo

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRunLoad(t *testing.T) {
	s, err := Start("127.0.0.1:0", Options{Service: "svc", Version: "v3", Pod: "p-0", FailFirst: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recs []Record
	err = RunLoad(context.Background(), LoadOptions{URL: s.URL + "/x", N: 50, Concurrency: 4,
		Headers: http.Header{"Host": {"svc.example"}, "Username": {"nolen"}}, IncludeHeaders: true},
		func(r Record) { recs = append(recs, r) })
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 50 || s.Requests() != 50 {
		t.Fatalf("%d records, %d served; want 50", len(recs), s.Requests())
	}
	status := map[int]int{}
	seqs := map[int]bool{}
	for _, r := range recs {
		status[r.Status]++
		seqs[r.Seq] = true
		if r.Status == 200 && (r.Version != "v3" || r.Pod != "p-0" || r.Headers.Get(HeaderService) != "svc") {
			t.Errorf("record %+v", r)
		}
	}
	if status[503] != 3 || status[200] != 47 || len(seqs) != 50 {
		t.Errorf("status %v, %d distinct seqs", status, len(seqs))
	}

	// Bounded by Duration and by Stop.
	slow, err := Start("127.0.0.1:0", Options{Delay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	n := 0
	_ = RunLoad(context.Background(), LoadOptions{URL: slow.URL, N: 1000, Duration: 300 * time.Millisecond}, func(Record) { n++ })
	if d := time.Since(start); d > 2*time.Second || n == 0 || n > 10 {
		t.Errorf("duration-bounded run: %d records in %s", n, d)
	}
	stop := make(chan struct{})
	time.AfterFunc(200*time.Millisecond, func() { close(stop) })
	n = 0
	_ = RunLoad(context.Background(), LoadOptions{URL: slow.URL, N: 1000, Stop: stop}, func(Record) { n++ })
	if n == 0 || n > 10 {
		t.Errorf("stopped run: %d records", n)
	}
	if err := RunLoad(context.Background(), LoadOptions{URL: slow.URL, N: 0}, func(Record) {}); err == nil {
		t.Errorf("N = 0 accepted")
	}
}

func TestRunLoadTLSTCPGRPC(t *testing.T) {
	collect := func(opts LoadOptions) []Record {
		t.Helper()
		var recs []Record
		if err := RunLoad(context.Background(), opts, func(r Record) { recs = append(recs, r) }); err != nil {
			t.Fatal(err)
		}
		if len(recs) != opts.N {
			t.Fatalf("%s: %d records, want %d", opts.URL, len(recs), opts.N)
		}
		return recs
	}

	// HTTPS: the server reports the SNI it got, the client the certificate it saw.
	tlsSrv, err := StartTLS("127.0.0.1:0", Options{Service: "tls", Version: "a", Pod: "tls-a"}, []string{"a.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer tlsSrv.Close()
	for _, r := range collect(LoadOptions{URL: tlsSrv.URL + "/x", N: 4, Concurrency: 2, SNI: "a.example", IncludeBody: true}) {
		if r.Status != 200 || r.Version != "a" || r.TLSPeer != "a.example" || !strings.Contains(r.Body, `"sni":"a.example"`) {
			t.Errorf("https record %+v", r)
		}
	}

	// TCP: each request a connection, greeted with the server's version.
	tcpSrv, err := StartTCP("127.0.0.1:0", Options{Service: "tcp", Version: "v2", Pod: "tcp-v2"})
	if err != nil {
		t.Fatal(err)
	}
	defer tcpSrv.Close()
	for _, r := range collect(LoadOptions{URL: "tcp://" + tcpSrv.Addr, N: 10, Concurrency: 3, IncludeBody: true}) {
		if r.Status != 200 || r.Version != "v2" || r.Pod != "tcp-v2" || r.Error != "" || !strings.Contains(r.Body, `"request":`) {
			t.Errorf("tcp record %+v", r)
		}
	}
	if n := tcpSrv.Connections(); n != 10 {
		t.Errorf("TCP server accepted %d connections, want 10", n)
	}

	// gRPC: health checks, tagged with the server's version in header metadata.
	grpcSrv, err := StartGRPC("127.0.0.1:0", Options{Service: "grpc", Version: "v3", Pod: "grpc-v3"})
	if err != nil {
		t.Fatal(err)
	}
	defer grpcSrv.Close()
	for _, r := range collect(LoadOptions{URL: "grpc://" + grpcSrv.Addr, N: 6, Concurrency: 2, IncludeHeaders: true, IncludeBody: true,
		Headers: http.Header{"X-Route": {"v3"}}}) {
		if r.Status != 200 || r.Version != "v3" || r.Pod != "grpc-v3" || r.Body != "SERVING" || r.Headers.Get(HeaderRequest) == "" {
			t.Errorf("grpc record %+v", r)
		}
	}
	if n := grpcSrv.Calls(); n != 6 {
		t.Errorf("gRPC server served %d calls, want 6", n)
	}
	grpcSrv.Close()
	for _, r := range collect(LoadOptions{URL: "grpc://" + grpcSrv.Addr, N: 1, Timeout: time.Second}) {
		if r.Status != 0 || !strings.Contains(r.Error, "Unavailable") {
			t.Errorf("grpc record from a closed server %+v", r)
		}
	}
	if err := RunLoad(context.Background(), LoadOptions{URL: "udp://127.0.0.1:1", N: 1}, func(Record) {}); err == nil {
		t.Errorf("udp:// accepted")
	}
}
