package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const scaleVirtualServices = 20000

// writeManyVirtualServices writes one file of n VirtualServices for one
// Service (≈ 5.6 MB for 20,000, the size of the file that once took analyze
// minutes): all claim host reviews (n-1 conflicts), every other one routes to
// a port the Service lacks, and every 1,000th has a regex RE2 refuses.
func writeManyVirtualServices(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "many.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.0.11
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`)
	for i := range n {
		port := 9080
		if i%2 == 1 {
			port = 9090
		}
		match := fmt.Sprintf("exact: u%d", i)
		if i%1000 == 0 {
			match = `regex: "u(` + fmt.Sprint(i) + `"`
		}
		fmt.Fprintf(w, `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-%05d
  namespace: shop
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        x-user:
          %s
    route:
    - destination:
        host: reviews
        port:
          number: %d
`, i, match, port)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
	return path
}

// analyze -f on 20,000 VirtualServices: every finding is there, and it takes
// seconds, not minutes (findings used to be de-duplicated by a linear scan).
func TestAnalyzeTwentyThousandVirtualServices(t *testing.T) {
	path := writeManyVirtualServices(t, scaleVirtualServices)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	err := runAnalyze(ctx, analyzeOptions{files: []string{path}, output: "json"}, &out)
	took := time.Since(start)
	if !errors.Is(err, errFound) {
		t.Fatalf("want errFound (the bad regexes), got %v", err)
	}
	var rows []finding
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Level+" "+r.Code]++
	}
	bad := scaleVirtualServices / 1000
	want := map[string]int{
		// The skipped ones conflict with nothing and route nowhere.
		"Error InvalidRegex":                     bad,
		"Warning ConflictingVirtualServiceHosts": scaleVirtualServices - bad - 1,
		"Warning DestinationPortNotFound":        scaleVirtualServices / 2,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d findings, want %d", k, got[k], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("findings by level and code: %v, want only %v", got, want)
	}
	t.Logf("analyze -f of %d VirtualServices (%.1f MB): %d findings in %v", scaleVirtualServices, fileMB(t, path), len(rows), took.Round(time.Millisecond))
}

func BenchmarkAnalyzeTwentyThousandVirtualServices(b *testing.B) {
	path := writeManyVirtualServices(b, scaleVirtualServices)
	b.ResetTimer()
	for range b.N {
		var out bytes.Buffer
		if err := runAnalyze(context.Background(), analyzeOptions{files: []string{path}, output: "text"}, &out); !errors.Is(err, errFound) {
			b.Fatal(err)
		}
	}
}

func fileMB(t testing.TB, path string) float64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return float64(st.Size()) / 1e6
}
