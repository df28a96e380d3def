package echo

import (
	"encoding/json"
	"io"
	"net/http"
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
