package echo

import (
	"context"
	"net/http"
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
