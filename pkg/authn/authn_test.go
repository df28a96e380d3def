package authn

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		md     []string
		want   string
		reason string
	}{
		{[]string{"authorization", "Bearer abc"}, "abc", ""},
		{[]string{"authorization", "bearer  abc "}, "abc", ""},
		{nil, "", "no_token"},
		{[]string{"authorization", "Basic abc"}, "", "invalid_token"},
		{[]string{"authorization", "Bearer "}, "", "invalid_token"},
		{[]string{"authorization", "Bearer a", "authorization", "Bearer b"}, "", "invalid_token"},
	} {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(c.md...))
		got, err := BearerToken(ctx)
		if c.reason != "" {
			if err == nil || Reason(err) != c.reason {
				t.Errorf("%v: got %q, %v; want reason %s", c.md, got, err, c.reason)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v: got %q, %v; want %q", c.md, got, err, c.want)
		}
	}
}

func TestParseServiceAccountUser(t *testing.T) {
	for u, want := range map[string][2]string{
		"system:serviceaccount:ns:sa": {"ns", "sa"},
		"system:serviceaccount:ns":    {},
		"system:serviceaccount::sa":   {},
		"system:serviceaccount:ns:":   {},
		"system:serviceaccount:a:b:c": {},
		"admin":                       {},
		"system:node:n1":              {},
	} {
		ns, sa, ok := parseServiceAccountUser(u)
		if ok != (want[0] != "") || ns != want[0] || sa != want[1] {
			t.Errorf("%q: got %q %q %v", u, ns, sa, ok)
		}
	}
}
