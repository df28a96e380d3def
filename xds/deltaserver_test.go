package xds

import (
	"slices"
	"testing"
)

func TestDeltaSubscription(t *testing.T) {
	// A first request naming nothing is a legacy wildcard, until one names something.
	d := newDeltaSub(true)
	d.update(nil, nil)
	if !d.wildcard || len(d.names) != 0 {
		t.Fatalf("legacy wildcard: %+v", d)
	}
	d.update([]string{"b", "a", "b"}, nil)
	if !d.wildcard || !slices.Equal(d.names, []string{"a", "b"}) {
		t.Fatalf("after naming a, b: %+v", d)
	}
	d.update([]string{"c"}, []string{"a", "*"})
	if d.wildcard || !slices.Equal(d.names, []string{"b", "c"}) || !d.has("c") || d.has("a") {
		t.Fatalf("after +c -a -*: %+v", d)
	}
	// Names first: not a wildcard; "*" makes it one explicitly.
	e := newDeltaSub(false)
	e.update([]string{"x"}, nil)
	if e.wildcard || !e.has("x") {
		t.Fatalf("named: %+v", e)
	}
	e.update([]string{"*"}, nil)
	if !e.wildcard {
		t.Fatalf("explicit wildcard: %+v", e)
	}
	// Unsubscribing what was never subscribed changes nothing.
	e.update(nil, []string{"nope"})
	if !slices.Equal(e.names, []string{"x"}) {
		t.Fatalf("unsubscribe unknown: %+v", e)
	}
	// A shared list is never written: changes make the subscription its own.
	shared := []string{"p", "q"}
	f := newDeltaSub(false)
	f.update([]string{"q", "p"}, nil)
	f.shareNames(shared)
	f.update([]string{"r"}, []string{"p"})
	if !slices.Equal(shared, []string{"p", "q"}) || !slices.Equal(f.names, []string{"q", "r"}) {
		t.Fatalf("shared %v, own %v", shared, f.names)
	}
	// A first subscription in order is kept as sent, and never written.
	sent := []string{"a", "b", "c"}
	g := newDeltaSub(false)
	g.update(sent, []string{"b"})
	g.update([]string{"d"}, []string{"a"})
	if !slices.Equal(sent, []string{"a", "b", "c"}) || !slices.Equal(g.names, []string{"c", "d"}) {
		t.Fatalf("sent %v, subscribed %v", sent, g.names)
	}
	// Out of order, repeated or with "*": sorted, deduplicated, wildcard.
	for _, first := range [][]string{{"b", "a"}, {"a", "a", "b"}, {"*", "a", "b"}} {
		h := newDeltaSub(false)
		h.update(first, nil)
		if !slices.Equal(h.names, []string{"a", "b"}) || h.wildcard != (first[0] == "*") {
			t.Errorf("first %v: names %v, wildcard %v", first, h.names, h.wildcard)
		}
	}
}
