package model

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// envoyRegexTable reads testdata/re2_program_sizes.tsv: Envoy 1.40's own
// program sizes (or refusals) for curated and randomly generated regexes.
func envoyRegexTable(t *testing.T) []struct {
	re   string
	size int // -1: Envoy refuses it
} {
	t.Helper()
	f, err := os.Open("testdata/re2_program_sizes.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []struct {
		re   string
		size int
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		parts := strings.Split(line, "\t")
		var re string
		if err := json.Unmarshal([]byte(parts[1]), &re); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		size := -1
		if parts[0] != "ERR" {
			if size, err = strconv.Atoi(parts[0]); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
		}
		out = append(out, struct {
			re   string
			size int
		}{re, size})
	}
	if len(out) < 500 {
		t.Fatalf("only %d table entries", len(out))
	}
	return out
}

func TestRegexProgramSizeMatchesEnvoyTable(t *testing.T) {
	for _, c := range envoyRegexTable(t) {
		got, err := RegexProgramSize(c.re)
		switch {
		case c.size < 0 && err == nil:
			t.Errorf("%q: Envoy refuses it, mizzen computed size %d", c.re, got)
		case c.size >= 0 && err != nil:
			t.Errorf("%q: Envoy's size is %d, mizzen refuses it: %v", c.re, c.size, err)
		case c.size >= 0 && got != c.size:
			t.Errorf("%q: Envoy's size is %d, mizzen computed %d", c.re, c.size, got)
		}
	}
}

// manyBranches is a group of 60 two-letter branches no prefix factors: about
// 180 instructions, so 1000 copies are far over maxRegexInsts.
var manyBranches = func() string {
	const first = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567"
	var b []string
	for _, c := range first {
		b = append(b, string(c)+"x")
	}
	return "(?:" + strings.Join(b, "|") + ")"
}()

func TestRegexProblemAtTheLimit(t *testing.T) {
	for re, want := range map[string]string{
		`[a-z]{96}`:                       "", // exactly 100
		`[a-z]{97}`:                       "RE2 program of 101 instructions; Envoy refuses more than 100",
		`/static/[a-zA-Z0-9._-]{0,200}/x`: "RE2 program of 1014 instructions",
		`^/` + strings.Repeat("a", 2000):  "", // a literal prefix after ^ costs nothing
		`\x{100}`:                         "refuses characters above",
		`(?P<x>a)(?P=x)`:                  "is not a valid RE2 regex",
		manyBranches + `{1000}`:           "far above",
	} {
		got := RegexProblem(re)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("RegexProblem(%.40q) = %q, want it to contain %q", re, got, want)
		}
	}
}

// A hostile object must not cost much CPU: the compiler stops at
// maxRegexInsts.
func TestRegexProgramSizeIsBounded(t *testing.T) {
	start := time.Now()
	for _, re := range []string{
		manyBranches + `{1000}`,
		strings.Repeat(`(?:[a-z]|[0-9]|_)`, 500) + `{1000}`,
		`(?:(?:(?:a|b|c|d|e|f|g|h){0,10}){0,10}){0,10}`,
		strings.Repeat("(?:a|", 900) + strings.Repeat(")", 900),
	} {
		_, _ = RegexProgramSize(re)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("three hostile patterns took %v", d)
	}
}
