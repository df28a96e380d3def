package model

import "testing"

// Header values reach Envoy verbatim; each "ok" value was also checked against
// Envoy 1.40 (an unknown %VARIABLE% makes it reject the whole route table).
func TestCheckHeaderValue(t *testing.T) {
	for v, ok := range map[string]bool{
		"plain":                              true,
		"":                                   true,
		"100%%":                              true,
		"%%%%":                               true,
		"%DOWNSTREAM_REMOTE_ADDRESS%":        true,
		"ip=%DOWNSTREAM_REMOTE_ADDRESS%;x=1": true,
		"%REQ(x-foo)%":                       true,
		"%REQ(x-foo):10%":                    true,
		"%START_TIME%":                       true,
		"%START_TIME(%s)%":                   true,
		"%HOSTNAME%-%PROTOCOL%":              true,
		"50%":                                false, // unterminated
		"%":                                  false,
		"%FOO%":                              false, // unknown to Envoy
		"%REQ%":                              false, // needs an argument
		"%HOSTNAME(x)%":                      false, // takes none
		"%lower%":                            false,
		"a\nb":                               false,
	} {
		if err := checkHeaderValue(v); (err == nil) != ok {
			t.Errorf("checkHeaderValue(%q) = %v, want ok=%v", v, err, ok)
		}
	}
}

func TestSNIWithinHosts(t *testing.T) {
	for _, c := range []struct {
		sni   string
		hosts []string
		want  bool
	}{
		{"a.example.com", []string{"a.example.com"}, true},
		{"a.example.com", []string{"*.example.com"}, true},
		{"*.a.example.com", []string{"*.example.com"}, true},
		{"example.com", []string{"*.example.com"}, false},
		{"a.example.org", []string{"*.example.com", "*"}, true},
		{"*", []string{"*.example.com"}, false},
	} {
		if got := sniWithinHosts(c.sni, c.hosts); got != c.want {
			t.Errorf("sniWithinHosts(%q, %v) = %v, want %v", c.sni, c.hosts, got, c.want)
		}
	}
}
