package loadclient

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unique"
)

// TestHeldMap runs random sets, gets and deletes against a Go map, in tables
// small enough that probe runs wrap around and deletions shift entries back.
func TestHeldMap(t *testing.T) {
	names := make([]handle, 300)
	for i := range names {
		names[i] = unique.Make(fmt.Sprintf("outbound|80||svc-%d.bench.svc.cluster.local", i))
	}
	for _, hint := range []int{0, 5, 300} {
		r := rand.New(rand.NewPCG(1, uint64(hint)))
		m, want := makeHeldMap(hint), map[handle]heldEntry{}
		for op := range 20000 {
			n := names[r.IntN(len(names))]
			switch r.IntN(3) {
			case 0:
				e := heldEntry{refs: int32(op)}
				m.set(n, e)
				want[n] = e
			case 1:
				m.delete(n)
				delete(want, n)
			}
			got, ok := m.get(n)
			if w, wok := want[n]; ok != wok || got != w {
				t.Fatalf("hint %d, op %d: get = %v %v, want %v %v", hint, op, got, ok, w, wok)
			}
			if m.len() != len(want) {
				t.Fatalf("hint %d, op %d: len %d, want %d", hint, op, m.len(), len(want))
			}
			if m.len()*5 > len(m.slots)*4 {
				t.Fatalf("hint %d, op %d: %d entries in %d slots", hint, op, m.len(), len(m.slots))
			}
		}
		seen := 0
		for n, e := range m.all() {
			if want[n] != e {
				t.Fatalf("hint %d: all yields %v for %s, want %v", hint, e, n.Value(), want[n])
			}
			seen++
		}
		if seen != len(want) {
			t.Fatalf("hint %d: all yields %d entries, want %d", hint, seen, len(want))
		}
	}
	// Exactly sized: as many entries as the hint fit without growing.
	m := makeHeldMap(len(names))
	size := len(m.slots)
	for _, n := range names {
		m.set(n, heldEntry{})
	}
	m.set(names[0], heldEntry{refs: 1}) // an update of a full table
	if len(m.slots) != size {
		t.Errorf("%d entries grew a table made for them: %d → %d slots", len(names), size, len(m.slots))
	}
}
