package rig

import "testing"

func TestCheckTarget(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://10.96.1.2/":       true,
		"http://10.96.1.2:8080/x": true,
		"http://198.18.2.1:8080/": true,
		"http://127.0.0.1:15000/": true,
		"http://240.240.0.10/":    true,
		"http://240.241.0.10/":    false,
		"http://10.97.0.1/":       false,
		"http://8.8.8.8/":         false,
		"http://example.com/":     false,
		"https://10.96.1.2/":      true,
		"tcp://10.96.1.2:9000":    true,
		"grpc://10.96.1.2:7070":   true,
		"tcp://8.8.8.8:53":        false,
		"https://1.1.1.1/":        false,
		"ftp://10.96.1.2/":        false,
		"http://[::1]:80/":        false,
		"http://apps-svc-all:80/": false,
		"http://192.168.1.1/":     false,
		"http://198.19.0.1/":      false,
	} {
		if err := checkTarget(url); (err == nil) != ok {
			t.Errorf("checkTarget(%q) = %v, want ok=%v", url, err, ok)
		}
	}
}
