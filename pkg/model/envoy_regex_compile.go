package model

import "slices"

// The second half of RegexProgramSize: RE2's Compiler (Latin-1), then the
// parts of Prog::Optimize and Prog::Flatten that decide how many
// instructions the flattened program has. Only sizes are kept: no matching
// ever runs on these programs.

type instOp uint8

const (
	instFail instOp = iota
	instAlt
	instAltMatch
	instByteRange
	instCapture
	instEmptyWidth
	instMatch
	instNop
)

type inst struct {
	op        instOp
	out, out1 uint32
	lo, hi    byte
}

// patchList is RE2's PatchList: the holes of a fragment (out or out1 of an
// instruction, encoded id<<1|which) threaded through the holes themselves.
type patchList struct{ head, tail uint32 }

type frag struct {
	begin    uint32
	end      patchList
	nullable bool
}

type reCompiler struct {
	inst   []inst
	failed bool
	// rangeBegin and rangeEnd accumulate a class's alternation (BeginRange).
	rangeBegin uint32
	rangeEnd   patchList
}

func (c *reCompiler) alloc(n int) uint32 {
	if c.failed || len(c.inst)+n > maxRegexInsts {
		c.failed = true
		return 0
	}
	id := uint32(len(c.inst))
	for i := 0; i < n; i++ {
		c.inst = append(c.inst, inst{})
	}
	return id
}

func (c *reCompiler) setHole(p, v uint32) {
	if p&1 != 0 {
		c.inst[p>>1].out1 = v
	} else {
		c.inst[p>>1].out = v
	}
}

func (c *reCompiler) hole(p uint32) uint32 {
	if p&1 != 0 {
		return c.inst[p>>1].out1
	}
	return c.inst[p>>1].out
}

func (c *reCompiler) patch(l patchList, v uint32) {
	for p := l.head; p != 0; {
		next := c.hole(p)
		c.setHole(p, v)
		p = next
	}
}

func (c *reCompiler) appendList(l1, l2 patchList) patchList {
	if l1.head == 0 {
		return l2
	}
	if l2.head == 0 {
		return l1
	}
	c.setHole(l1.tail, l2.head)
	return patchList{l1.head, l2.tail}
}

func mk(p uint32) patchList { return patchList{p, p} }

func noMatch() frag { return frag{} }

func (c *reCompiler) cat(a, b frag) frag {
	if a.begin == 0 || b.begin == 0 {
		return noMatch()
	}
	// A Nop that is all of a is elided.
	if in := c.inst[a.begin]; in.op == instNop && a.end.head == a.begin<<1 && in.out == 0 {
		c.patch(a.end, b.begin)
		return b
	}
	c.patch(a.end, b.begin)
	return frag{a.begin, b.end, a.nullable && b.nullable}
}

func (c *reCompiler) alt(a, b frag) frag {
	if a.begin == 0 {
		return b
	}
	if b.begin == 0 {
		return a
	}
	id := c.alloc(1)
	if c.failed {
		return noMatch()
	}
	c.inst[id] = inst{op: instAlt, out: a.begin, out1: b.begin}
	return frag{id, c.appendList(a.end, b.end), a.nullable || b.nullable}
}

// loop is the Alt of x+ and x*: greedy tries x first.
func (c *reCompiler) loop(a frag, nongreedy bool) (uint32, patchList) {
	id := c.alloc(1)
	if c.failed {
		return 0, patchList{}
	}
	if nongreedy {
		c.inst[id] = inst{op: instAlt, out1: a.begin}
		return id, mk(id << 1)
	}
	c.inst[id] = inst{op: instAlt, out: a.begin}
	return id, mk(id<<1 | 1)
}

func (c *reCompiler) plus(a frag, nongreedy bool) frag {
	id, pl := c.loop(a, nongreedy)
	if c.failed {
		return noMatch()
	}
	c.patch(a.end, id)
	return frag{a.begin, pl, a.nullable}
}

func (c *reCompiler) star(a frag, nongreedy bool) frag {
	// A nullable x in one Alt loop breaks priorities; RE2 compiles (x+)?.
	if a.nullable {
		return c.quest(c.plus(a, nongreedy), nongreedy)
	}
	id, pl := c.loop(a, nongreedy)
	if c.failed {
		return noMatch()
	}
	c.patch(a.end, id)
	return frag{id, pl, true}
}

func (c *reCompiler) quest(a frag, nongreedy bool) frag {
	if a.begin == 0 {
		return c.nop()
	}
	id, pl := c.loop(a, nongreedy)
	if c.failed {
		return noMatch()
	}
	return frag{id, c.appendList(pl, a.end), true}
}

func (c *reCompiler) single(in inst, nullable bool) frag {
	id := c.alloc(1)
	if c.failed {
		return noMatch()
	}
	c.inst[id] = in
	if in.op == instMatch {
		return frag{id, patchList{}, false}
	}
	return frag{id, mk(id << 1), nullable}
}

func (c *reCompiler) byteRange(lo, hi rune) frag {
	return c.single(inst{op: instByteRange, lo: byte(lo), hi: byte(hi)}, false)
}

func (c *reCompiler) nop() frag        { return c.single(inst{op: instNop}, true) }
func (c *reCompiler) emptyWidth() frag { return c.single(inst{op: instEmptyWidth}, true) }
func (c *reCompiler) matchInst() frag  { return c.single(inst{op: instMatch}, false) }
func (c *reCompiler) dotStar() frag    { return c.star(c.byteRange(0, 0xff), true) }
func (c *reCompiler) beginRange()      { c.rangeBegin, c.rangeEnd = 0, patchList{} }
func (c *reCompiler) endRange() frag   { return frag{c.rangeBegin, c.rangeEnd, false} }
func (c *reCompiler) addRange(lo, hi rune) {
	if lo > hi || lo > 0xff {
		return
	}
	f := c.byteRange(lo, min(hi, 0xff))
	if c.failed {
		return
	}
	c.rangeEnd = c.appendList(c.rangeEnd, f.end)
	if c.rangeBegin == 0 {
		c.rangeBegin = f.begin
		return
	}
	id := c.alloc(1)
	if c.failed {
		return
	}
	c.inst[id] = inst{op: instAlt, out: c.rangeBegin, out1: f.begin}
	c.rangeBegin = id
}

func (c *reCompiler) capture(a frag) frag {
	if a.begin == 0 {
		return noMatch()
	}
	id := c.alloc(2)
	if c.failed {
		return noMatch()
	}
	c.inst[id] = inst{op: instCapture, out: a.begin}
	c.inst[id+1] = inst{op: instCapture}
	c.patch(a.end, id+1)
	return frag{id, mk((id + 1) << 1), a.nullable}
}

// class compiles a character class as RE2 does in Latin-1 mode: one byte
// range per range, ranges wholly in A-Z dropped when the class treats A-Z
// and a-z alike (they become case-folding ranges of a-z).
func (c *reCompiler) class(n *reNode) frag {
	c.beginRange()
	fold := foldsASCII(n.ranges)
	for i := 0; i+1 < len(n.ranges); i += 2 {
		lo, hi := n.ranges[i], n.ranges[i+1]
		if fold && 'A' <= lo && hi <= 'Z' {
			continue
		}
		c.addRange(lo, hi)
	}
	return c.endRange()
}

// foldsASCII is RE2's CharClass::FoldsASCII: every ASCII letter is in the
// class in both cases or in neither.
func foldsASCII(ranges []rune) bool {
	var upper, lower uint32
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := max(ranges[i], 'A'); r <= min(ranges[i+1], 'Z'); r++ {
			upper |= 1 << (r - 'A')
		}
		for r := max(ranges[i], 'a'); r <= min(ranges[i+1], 'z'); r++ {
			lower |= 1 << (r - 'a')
		}
	}
	return upper == lower
}

func (c *reCompiler) compile(n *reNode) frag {
	if c.failed {
		return noMatch()
	}
	switch n.op {
	case reNoMatch:
		return noMatch()
	case reEmptyMatch:
		return c.nop()
	case reLiteral, reLiteralString:
		if len(n.runes) == 0 {
			return c.nop()
		}
		f := c.byteRange(n.runes[0], n.runes[0])
		for _, r := range n.runes[1:] {
			f = c.cat(f, c.byteRange(r, r))
		}
		return f
	case reAnyChar:
		c.beginRange()
		c.addRange(0, 0xff)
		return c.endRange()
	case reCharClass:
		return c.class(n)
	case reBeginLine, reEndLine, reBeginText, reEndText, reWordBoundary, reNoWordBoundary:
		return c.emptyWidth()
	case reCapture:
		return c.capture(c.compile(n.sub[0]))
	case reStar:
		return c.star(c.compile(n.sub[0]), n.nongreedy())
	case rePlus:
		return c.plus(c.compile(n.sub[0]), n.nongreedy())
	case reQuest:
		return c.quest(c.compile(n.sub[0]), n.nongreedy())
	case reConcat:
		return c.fold(n.sub, c.cat)
	case reAlternate:
		return c.fold(n.sub, c.alt)
	}
	// A repeat left after simplification would be a bug in simplifyNode.
	c.failed = true
	return noMatch()
}

// fold compiles every sub, then combines them left to right: RE2 compiles
// all branches of an alternation before chaining the Alts, and instruction
// numbers decide Flatten's dominator order, so the order is RE2's.
func (c *reCompiler) fold(subs []*reNode, combine func(a, b frag) frag) frag {
	fs := make([]frag, len(subs))
	for i, s := range subs {
		fs[i] = c.compile(s)
	}
	f := fs[0]
	for _, g := range fs[1:] {
		f = combine(f, g)
	}
	return f
}

// compileSize compiles the simplified tree as Compiler::Compile does and
// returns the size of the flattened program.
func compileSize(n *reNode) (int, error) {
	c := &reCompiler{}
	c.alloc(1) // instruction 0 is the fail instruction
	n, anchorStart := anchor(n, 0, false)
	n, _ = anchor(n, 0, true)
	all := c.compile(n)
	all = c.cat(all, c.matchInst())
	start := all.begin
	if !anchorStart {
		all = c.cat(c.dotStar(), all)
	}
	startUnanchored := all.begin
	if c.failed {
		return 0, errRegexTooLarge
	}
	if start == 0 && startUnanchored == 0 {
		return 1, nil // nothing can match: the fail instruction alone
	}
	c.optimize(start)
	return c.flattenedSize(start, startUnanchored), nil
}

// workq is RE2's SparseSet as a work queue: insertion order, no duplicates.
type workq struct {
	order []uint32
	in    map[uint32]bool
}

func newWorkq() *workq { return &workq{in: map[uint32]bool{}} }

func (q *workq) add(id uint32) {
	if id != 0 && !q.in[id] {
		q.in[id] = true
		q.order = append(q.order, id)
	}
}

func (c *reCompiler) skipNops(j uint32) uint32 {
	for j != 0 && c.inst[j].op == instNop {
		j = c.inst[j].out
	}
	return j
}

// optimize is Prog::Optimize: it threads outs past Nops and marks the Alts
// of a .* loop before the match as AltMatch, for what is reachable from the
// anchored start only (the unanchored prefix is left as compiled).
func (c *reCompiler) optimize(start uint32) {
	q := newWorkq()
	q.add(start)
	for i := 0; i < len(q.order); i++ {
		ip := &c.inst[q.order[i]]
		ip.out = c.skipNops(ip.out)
		q.add(ip.out)
		if ip.op == instAlt {
			ip.out1 = c.skipNops(ip.out1)
			q.add(ip.out1)
		}
	}
	q = newWorkq()
	q.add(start)
	for i := 0; i < len(q.order); i++ {
		id := q.order[i]
		ip := &c.inst[id]
		q.add(ip.out)
		if ip.op != instAlt {
			continue
		}
		q.add(ip.out1)
		j, k := c.inst[ip.out], c.inst[ip.out1]
		anyByteLoop := func(x inst) bool { return x.op == instByteRange && x.out == id && x.lo == 0 && x.hi == 0xff }
		if (anyByteLoop(j) && c.isMatch(ip.out1)) || (c.isMatch(ip.out) && anyByteLoop(k)) {
			ip.op = instAltMatch
		}
	}
}

func (c *reCompiler) isMatch(id uint32) bool {
	for {
		switch c.inst[id].op {
		case instCapture, instNop:
			id = c.inst[id].out
		case instMatch:
			return true
		default:
			return false
		}
	}
}

// rootSet is RE2's SparseArray rootmap: which instructions start a list.
type rootSet struct {
	order []uint32
	in    []bool
}

func (r *rootSet) add(id uint32) {
	if !r.in[id] {
		r.in[id] = true
		r.order = append(r.order, id)
	}
}

// flattener holds Flatten's scratch space, reused by every walk: a stamp
// per instruction instead of a set allocated per root.
type flattener struct {
	c     *reCompiler
	roots *rootSet
	mark  []uint32
	stamp uint32
	stk   []uint32
}

// flattenedSize is Prog::Flatten's count: the program is cut into lists,
// one per "root" (the start instructions, the successor of every
// byte range, capture and assertion, and dominators found in a second
// pass); each list holds the leaves reachable from its root through Alts
// and Nops, one Nop per other root reached, and its AltMatches.
func (c *reCompiler) flattenedSize(start, startUnanchored uint32) int {
	n := len(c.inst)
	f := &flattener{c: c, roots: &rootSet{in: make([]bool, n)}, mark: make([]uint32, n)}
	f.roots.add(0)
	f.roots.add(startUnanchored)
	f.roots.add(start)
	// Prog::MarkSuccessors: every successor of a byte range, capture or
	// assertion is a root; the Alts are remembered as predecessors.
	preds := make([][]uint32, n)
	f.walk(startUnanchored, false, func(id uint32, _ bool) {
		switch ip := c.inst[id]; ip.op {
		case instAlt, instAltMatch:
			preds[ip.out] = append(preds[ip.out], id)
			preds[ip.out1] = append(preds[ip.out1], id)
		case instByteRange, instCapture, instEmptyWidth:
			f.roots.add(ip.out)
		}
	})
	sorted := append([]uint32(nil), f.roots.order...)
	slices.Sort(sorted)
	for i := len(sorted) - 1; i > 0; i-- {
		if sorted[i] != startUnanchored && sorted[i] != start {
			f.markDominator(sorted[i], preds)
		}
	}
	total := 0
	for _, root := range f.roots.order {
		total += f.listSize(root)
	}
	return total
}

// walk visits, once each, the instructions reachable from root through Alts
// and Nops. A list (list true) stops at byte ranges, captures and assertions
// and at other roots (visit is told otherRoot); the whole program (list
// false) goes on through them. seen reports, until the next walk, whether an
// instruction was reached.
func (f *flattener) walk(root uint32, list bool, visit func(id uint32, otherRoot bool)) (seen func(uint32) bool) {
	f.stamp++
	stamp := f.stamp
	f.stk = append(f.stk[:0], root)
	for len(f.stk) > 0 {
		id := f.stk[len(f.stk)-1]
		f.stk = f.stk[:len(f.stk)-1]
	follow:
		for f.mark[id] != stamp {
			f.mark[id] = stamp
			if list && id != root && f.roots.in[id] {
				visit(id, true)
				break
			}
			visit(id, false)
			ip := f.c.inst[id]
			switch ip.op {
			case instAlt, instAltMatch:
				f.stk = append(f.stk, ip.out1)
			case instNop:
			case instByteRange, instCapture, instEmptyWidth:
				if list {
					break follow
				}
			default: // match, fail
				break follow
			}
			id = ip.out
		}
	}
	return func(id uint32) bool { return f.mark[id] == stamp }
}

// markDominator is Prog::MarkDominator: an instruction reachable from root
// that also has a predecessor root cannot reach becomes a root itself.
func (f *flattener) markDominator(root uint32, preds [][]uint32) {
	var reached []uint32
	seen := f.walk(root, true, func(id uint32, _ bool) { reached = append(reached, id) })
	for _, id := range reached {
		for _, p := range preds[id] {
			if !seen(p) {
				f.roots.add(id)
			}
		}
	}
}

// listSize is the length of the list Prog::EmitList writes for root.
func (f *flattener) listSize(root uint32) int {
	n := 0
	f.walk(root, true, func(id uint32, otherRoot bool) {
		if otherRoot {
			n++ // a Nop to the other root's list
			return
		}
		switch f.c.inst[id].op {
		case instAltMatch, instByteRange, instCapture, instEmptyWidth, instMatch, instFail:
			n++
		}
	})
	return n
}
