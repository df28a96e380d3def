package echo

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEcho(t *testing.T) {
	s, err := Start("127.0.0.1:0", Options{Service: "reviews", Version: "v2", Pod: "reviews-v2-0", FailFirst: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	get := func() (*http.Response, Response) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/reviews/1?x=y", nil)
		req.Host = "reviews.example.com"
		req.Header.Set("Username", "nolen")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var r Response
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		return resp, r
	}
	for i := 0; i < 2; i++ {
		if resp, r := get(); resp.StatusCode != 503 || r.Request != int64(i+1) {
			t.Fatalf("request %d: status %d (request number %d), want 503 (FailFirst)", i, resp.StatusCode, r.Request)
		}
	}
	resp, r := get()
	if resp.StatusCode != 200 || resp.Header.Get(HeaderVersion) != "v2" {
		t.Fatalf("status %d, %s %q", resp.StatusCode, HeaderVersion, resp.Header.Get(HeaderVersion))
	}
	if r.Service != "reviews" || r.Version != "v2" || r.Pod != "reviews-v2-0" || r.Method != "GET" ||
		r.Path != "/reviews/1?x=y" || r.Host != "reviews.example.com" || r.Header("username") != "nolen" || r.Request != 3 {
		t.Errorf("response %+v", r)
	}
	if s.Requests() != 3 {
		t.Errorf("Requests() = %d, want 3", s.Requests())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := client.Get(s.URL); err == nil {
		t.Errorf("server still answers after Close")
	}
}

func TestEchoDelay(t *testing.T) {
	s, err := Start("127.0.0.1:0", Options{Service: "slow", Delay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %s, want ≥ 200ms", d)
	}
}

// One port, three kinds of client: HTTP/1.1, h2c, a server-first TCP client
// (sends nothing: greeted after MuxWait) and a client-first one.
func TestMuxServer(t *testing.T) {
	s, err := StartMux("127.0.0.1:0", Options{Service: "mux", Version: "v1", Pod: "mux-0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, scheme := range []string{"http", "h2c"} {
		var recs []Record
		if err := RunLoad(ctx, LoadOptions{URL: scheme + "://" + s.Addr + "/", N: 3}, func(r Record) { recs = append(recs, r) }); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"http": "HTTP/1.1", "h2c": "HTTP/2.0"}[scheme]
		for _, r := range recs {
			if r.Status != 200 || r.BackendProto != want || r.Proto != want {
				t.Fatalf("%s: %+v, want 200 in %s", scheme, r, want)
			}
		}
	}
	var recs []Record
	if err := RunLoad(ctx, LoadOptions{URL: "tcp://" + s.Addr, N: 2}, func(r Record) { recs = append(recs, r) }); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Status != 200 || r.Pod != "mux-0" {
			t.Fatalf("server-first: %+v", r)
		}
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("mizzen client first\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil || !strings.Contains(greeting, `"pod":"mux-0"`) {
		t.Fatalf("client-first: greeting %q, %v", greeting, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "mizzen client first\n" {
		t.Fatalf("client-first: echo %q, %v", line, err)
	}
	if s.Requests() != 6 || s.Connections() != 3 {
		t.Errorf("%d HTTP requests, %d TCP connections; want 6 and 3", s.Requests(), s.Connections())
	}
}
