package loadclient

import (
	"iter"
	"math/bits"
	"unsafe"
)

// heldMap is what a delta proxy holds of one type, by interned name: an
// open-addressing table with linear probing whose size is 5/4 of its
// entries. Go's maps round a table up to a power of two, which at the
// benchmark's 1,000 services is 2,048 slots for 1,000 entries; 1,000 proxies
// × 2 such maps was 135 MB of fresh memory in the warm-up, and first touching
// it (16 µs a page on this project's VM) was a fifth of the client's CPU.
type heldMap struct {
	slots []heldSlot
	n     int
}

// heldSlot is one slot of a heldMap; a zero name is an empty slot.
type heldSlot struct {
	name handle
	e    heldEntry
}

// makeHeldMap returns a heldMap with room for hint entries.
func makeHeldMap(hint int) heldMap {
	return heldMap{slots: make([]heldSlot, heldSlots(hint))}
}

// heldSlots is the table size for n entries: a load factor of at most 0.8.
func heldSlots(n int) int { return n + n/4 + 1 }

func (m *heldMap) len() int { return m.n }

// home is the slot where name's probe starts: a multiplicative hash of the
// handle's address (unique's values never move) scaled to the table without
// a division.
func (m *heldMap) home(name handle) int {
	h := uint64(uintptr(*(*unsafe.Pointer)(unsafe.Pointer(&name)))) * 0x9e3779b97f4a7c15
	hi, _ := bits.Mul64(h, uint64(len(m.slots)))
	return int(hi)
}

// find returns name's slot, or the empty slot where it would go.
func (m *heldMap) find(name handle) (i int, found bool) {
	for i = m.home(name); ; {
		switch m.slots[i].name {
		case name:
			return i, true
		case handle{}:
			return i, false
		}
		if i++; i == len(m.slots) {
			i = 0
		}
	}
}

func (m *heldMap) get(name handle) (heldEntry, bool) {
	if m.n == 0 {
		return heldEntry{}, false
	}
	i, ok := m.find(name)
	return m.slots[i].e, ok
}

func (m *heldMap) set(name handle, e heldEntry) {
	if len(m.slots) > 0 {
		if i, ok := m.find(name); ok {
			m.slots[i].e = e
			return
		}
	}
	if (m.n+1)*5 > len(m.slots)*4 {
		m.grow()
	}
	i, _ := m.find(name)
	m.slots[i] = heldSlot{name: name, e: e}
	m.n++
}

func (m *heldMap) grow() {
	old := m.slots
	m.slots, m.n = make([]heldSlot, heldSlots(max(8, 2*m.n))), 0
	for _, s := range old {
		if s.name != (handle{}) {
			m.set(s.name, s.e)
		}
	}
}

// delete removes name, moving back the entries of its probe run that the
// freed slot would have stopped (backward-shift deletion, no tombstones).
func (m *heldMap) delete(name handle) {
	if m.n == 0 {
		return
	}
	i, ok := m.find(name)
	if !ok {
		return
	}
	n := len(m.slots)
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		s := m.slots[j]
		if s.name == (handle{}) {
			break
		}
		// s may move to i unless its home lies cyclically in (i, j].
		h := m.home(s.name)
		if (i < j && (h <= i || h > j)) || (i > j && h <= i && h > j) {
			m.slots[i] = s
			i = j
		}
	}
	m.slots[i] = heldSlot{}
	m.n--
}

// all yields every entry, in no particular order.
func (m *heldMap) all() iter.Seq2[handle, heldEntry] {
	return func(yield func(handle, heldEntry) bool) {
		for _, s := range m.slots {
			if s.name != (handle{}) && !yield(s.name, s.e) {
				return
			}
		}
	}
}
