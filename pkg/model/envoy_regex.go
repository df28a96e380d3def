package model

import (
	"errors"
	"regexp/syntax"
	"strings"
)

// Envoy compiles every safe_regex with RE2 and refuses the whole resource (a
// NACK, so every later update of that type for that proxy is blocked) when
// the regex's RE2 program has more instructions than the runtime key
// re2.max_program_size.error_level allows. The program size is not the
// regex's length: `^` + a long literal costs 4, `/static/[a-zA-Z0-9._-]{0,200}/x`
// costs 1014. So mizzen computes it the way RE2 does, on the same kind of
// program, and refuses what Envoy would.
//
// What is modelled, checked against Envoy 1.40 (the table in
// testdata/re2_program_sizes.tsv holds Envoy's own answers, see
// re2_program_size_test.go):
//   - Envoy 1.40's RE2 runs in Latin-1 mode: each byte of the pattern is one
//     character, \x{100} and above are refused, and (?i) folds ASCII letters
//     only.
//   - RE2::Init strips a literal prefix after leading \A/^ (RequiredPrefix)
//     and compiles the rest unanchored.
//   - Regexp::Simplify: runs of x*, x+, x?, x{n,m} and x coalesce into one
//     repeat; repeats expand into copies (x{2,5} is xx(x(x(x)?)?)?); a repeat
//     of an empty-width assertion collapses to at most one.
//   - Compiler: one instruction per byte range, alternation, capture
//     boundary, assertion, plus the match, the fail instruction and the
//     unanchored `.*?` prefix; a nullable x* is compiled as (x+)?.
//   - Prog::Optimize and Prog::Flatten: the size Envoy compares is the
//     flattened program's, where alternations become lists.
//
// The parser (envoy_regex_parse.go) is RE2's, not Go's regexp/syntax: the
// two build different trees for the same pattern (Go merges a|b while
// parsing and drops repeated empty alternatives; RE2 factors a|a into
// a(?:|)), and the program size follows the tree.

// MaxRegexProgramSize is the largest RE2 program size mizzen lets into a
// regex it sends to Envoy. It is Envoy's default for
// re2.max_program_size.error_level: mizzen's own sidecar bootstrap
// (pkg/bootstrap) and plain Envoy bootstraps set no runtime override, so 100
// is what those proxies enforce. istio-agent's bootstrap raises it to 32768
// (the runtime layer of Istio's tools/packaging/common/envoy_bootstrap.json,
// from its pkg/bootstrap/config.go), but mizzen cannot tell from a
// VirtualService which kind of proxy will get it, so the smallest limit of
// any proxy it serves applies to all.
const MaxRegexProgramSize = 100

// maxRegexInsts stops the compiler on patterns that expand far beyond any
// limit (x{1000} of a large x), so a hostile object costs bounded CPU.
const maxRegexInsts = 1 << 16

var errRegexTooLarge = errors.New("RE2 program too large")

// RegexProgramSize returns the RE2 program size Envoy computes for the regex,
// or an error when Envoy's RE2 would not compile it at all.
func RegexProgramSize(re string) (int, error) {
	// Go's parser is the syntax check mizzen has always applied; RE2's
	// accepts a little more (\C), which mizzen keeps refusing.
	if _, err := syntax.Parse(latin1String(re), syntax.Perl); err != nil {
		return 0, err
	}
	n, err := parseRE2(re)
	if err != nil {
		return 0, err
	}
	if suffix, ok := requiredPrefix(n); ok {
		n = suffix
	}
	return compileSize(simplifyNode(coalesceNode(n)))
}

// latin1String reads each byte of the pattern as one character, as RE2 does
// in Latin-1 mode.
func latin1String(re string) string {
	var sb strings.Builder
	for i := 0; i < len(re); i++ {
		sb.WriteRune(rune(re[i]))
	}
	return sb.String()
}

// reOp mirrors RE2's RegexpOp for the parts of a pattern RE2 compiles.
type reOp uint8

const (
	reNoMatch reOp = iota
	reEmptyMatch
	reLiteral
	reLiteralString
	reCharClass
	reAnyChar
	reBeginLine
	reEndLine
	reBeginText
	reEndText
	reWordBoundary
	reNoWordBoundary
	reCapture
	reStar
	rePlus
	reQuest
	reRepeat
	reConcat
	reAlternate
)

// reNode is one node of RE2's parse tree (Regexp), built from Go's.
type reNode struct {
	op    reOp
	flags reFlags
	runes []rune // literal(s)
	// ranges are a class's lo,hi pairs, Latin-1 only, sorted and merged.
	ranges   []rune
	min, max int
	cap      int
	sub      []*reNode
}

func (n *reNode) nongreedy() bool { return n.flags&reNonGreedy != 0 }
func (n *reNode) foldCase() bool  { return n.flags&reFoldCase != 0 }

func concatOf(subs []*reNode, flags reFlags) *reNode {
	switch len(subs) {
	case 0:
		return &reNode{op: reEmptyMatch, flags: flags}
	case 1:
		return subs[0]
	}
	return &reNode{op: reConcat, flags: flags, sub: subs}
}

// starPlusQuest is RE2's Regexp::StarPlusOrQuest: x** is x*, and any mix of
// *, + and ? is *, when the flags agree.
func starPlusQuest(op reOp, sub *reNode, flags reFlags) *reNode {
	if op == sub.op && flags == sub.flags {
		return sub
	}
	if (sub.op == reStar || sub.op == rePlus || sub.op == reQuest) && flags == sub.flags {
		if sub.op == reStar {
			return sub
		}
		return &reNode{op: reStar, flags: flags, sub: sub.sub}
	}
	return &reNode{op: op, flags: flags, sub: []*reNode{sub}}
}

// requiredPrefix is RE2's Regexp::RequiredPrefix: for ^literal..., RE2::Init
// matches the literal itself and compiles only the rest (unanchored).
func requiredPrefix(n *reNode) (*reNode, bool) {
	if n.op != reConcat {
		return nil, false
	}
	i := 0
	for i < len(n.sub) && n.sub[i].op == reBeginText {
		i++
	}
	if i == 0 || i >= len(n.sub) || (n.sub[i].op != reLiteral && n.sub[i].op != reLiteralString) {
		return nil, false
	}
	i++
	if i < len(n.sub) {
		return concatOf(n.sub[i:], n.flags), true
	}
	return &reNode{op: reEmptyMatch, flags: n.flags}, true
}

// reEqual is RE2's Regexp::Equal.
func reEqual(a, b *reNode) bool {
	if a.op != b.op || len(a.sub) != len(b.sub) {
		return false
	}
	switch a.op {
	case reEndText:
		return (a.flags^b.flags)&reWasDollar == 0
	case reLiteral, reLiteralString:
		if (a.flags^b.flags)&reFoldCase != 0 || len(a.runes) != len(b.runes) {
			return false
		}
		for i := range a.runes {
			if a.runes[i] != b.runes[i] {
				return false
			}
		}
	case reStar, rePlus, reQuest:
		if a.nongreedy() != b.nongreedy() {
			return false
		}
	case reRepeat:
		if a.nongreedy() != b.nongreedy() || a.min != b.min || a.max != b.max {
			return false
		}
	case reCapture:
		if a.cap != b.cap {
			return false
		}
	case reCharClass:
		if len(a.ranges) != len(b.ranges) {
			return false
		}
		for i := range a.ranges {
			if a.ranges[i] != b.ranges[i] {
				return false
			}
		}
	}
	for i := range a.sub {
		if !reEqual(a.sub[i], b.sub[i]) {
			return false
		}
	}
	return true
}

// coalesceNode is RE2's CoalesceWalker: in a concatenation, x* x+ x? x{n,m}
// and x next to each other become one repeat of x.
func coalesceNode(n *reNode) *reNode {
	if len(n.sub) == 0 {
		return n
	}
	subs := make([]*reNode, len(n.sub))
	for i, s := range n.sub {
		subs[i] = coalesceNode(s)
	}
	out := *n
	out.sub = subs
	if n.op != reConcat {
		return &out
	}
	coalesced := false
	for i := 0; i+1 < len(subs); i++ {
		if canCoalesce(subs[i], subs[i+1]) {
			subs[i], subs[i+1] = doCoalesce(subs[i], subs[i+1])
			coalesced = true
		}
	}
	if !coalesced {
		return &out
	}
	kept := subs[:0]
	for _, s := range subs {
		if s.op != reEmptyMatch {
			kept = append(kept, s)
		}
	}
	out.sub = kept
	return &out
}

func isRepeatOp(op reOp) bool { return op == reStar || op == rePlus || op == reQuest || op == reRepeat }

func canCoalesce(r1, r2 *reNode) bool {
	if !isRepeatOp(r1.op) {
		return false
	}
	x := r1.sub[0]
	if x.op != reLiteral && x.op != reCharClass && x.op != reAnyChar {
		return false
	}
	if isRepeatOp(r2.op) && reEqual(x, r2.sub[0]) && r1.nongreedy() == r2.nongreedy() {
		return true
	}
	if reEqual(x, r2) {
		return true
	}
	return x.op == reLiteral && r2.op == reLiteralString && r2.runes[0] == x.runes[0] &&
		x.foldCase() == r2.foldCase()
}

func doCoalesce(r1, r2 *reNode) (*reNode, *reNode) {
	nre := &reNode{op: reRepeat, flags: r1.flags, sub: []*reNode{r1.sub[0]}}
	switch r1.op {
	case reStar:
		nre.min, nre.max = 0, -1
	case rePlus:
		nre.min, nre.max = 1, -1
	case reQuest:
		nre.min, nre.max = 0, 1
	case reRepeat:
		nre.min, nre.max = r1.min, r1.max
	}
	empty := &reNode{op: reEmptyMatch}
	switch r2.op {
	case reStar:
		nre.max = -1
	case rePlus:
		nre.min++
		nre.max = -1
	case reQuest:
		if nre.max != -1 {
			nre.max++
		}
	case reRepeat:
		nre.min += r2.min
		if r2.max == -1 {
			nre.max = -1
		} else if nre.max != -1 {
			nre.max += r2.max
		}
	case reLiteralString:
		k := 1
		for k < len(r2.runes) && r2.runes[k] == r1.sub[0].runes[0] {
			k++
		}
		nre.min += k
		if nre.max != -1 {
			nre.max += k
		}
		if k < len(r2.runes) {
			rest := &reNode{op: reLiteralString, flags: r2.flags, runes: r2.runes[k:]}
			if len(rest.runes) == 1 {
				rest.op = reLiteral
			}
			return nre, rest
		}
	default: // the literal, class or any char itself
		nre.min++
		if nre.max != -1 {
			nre.max++
		}
	}
	return empty, nre
}

// simplifyNode is RE2's SimplifyWalker: repeats become copies of x, x?, x*
// and x+; empty classes match nothing.
func simplifyNode(n *reNode) *reNode {
	switch n.op {
	case reConcat, reAlternate, reCapture:
		out := *n
		out.sub = make([]*reNode, len(n.sub))
		for i, s := range n.sub {
			out.sub[i] = simplifyNode(s)
		}
		return &out
	case reStar, rePlus, reQuest:
		sub := simplifyNode(n.sub[0])
		switch {
		case sub.op == reEmptyMatch:
			return sub
		case sub == n.sub[0]:
			return n
		case n.op == sub.op && n.flags == sub.flags:
			return sub
		}
		return &reNode{op: n.op, flags: n.flags, sub: []*reNode{sub}}
	case reRepeat:
		sub := simplifyNode(n.sub[0])
		if sub.op == reEmptyMatch {
			return sub
		}
		return simplifyRepeat(sub, n.min, n.max, n.flags)
	case reCharClass:
		if len(n.ranges) == 0 {
			return &reNode{op: reNoMatch, flags: n.flags}
		}
	}
	return n
}

// isEmptyOp: an assertion, or a concatenation or alternation of them, which
// is pointless to repeat more than once.
func isEmptyOp(n *reNode) bool {
	switch n.op {
	case reBeginLine, reEndLine, reWordBoundary, reNoWordBoundary, reBeginText, reEndText:
		return true
	case reConcat, reAlternate:
		for _, s := range n.sub {
			if !isEmptyOp(s) {
				return false
			}
		}
		return true
	}
	return false
}

func simplifyRepeat(re *reNode, lo, hi int, f reFlags) *reNode {
	if isEmptyOp(re) {
		lo = min(lo, 1)
		hi = min(hi, 1)
	}
	if hi == -1 {
		switch lo {
		case 0:
			return starPlusQuest(reStar, re, f)
		case 1:
			return starPlusQuest(rePlus, re, f)
		}
		subs := make([]*reNode, lo)
		for i := 0; i < lo-1; i++ {
			subs[i] = re
		}
		subs[lo-1] = starPlusQuest(rePlus, re, f)
		return &reNode{op: reConcat, flags: f, sub: subs}
	}
	if lo == 0 && hi == 0 {
		return &reNode{op: reEmptyMatch, flags: f}
	}
	if lo == 1 && hi == 1 {
		return re
	}
	var nre *reNode
	if lo > 0 {
		subs := make([]*reNode, lo)
		for i := range subs {
			subs[i] = re
		}
		nre = concatOf(subs, f)
	}
	if hi > lo {
		suf := starPlusQuest(reQuest, re, f)
		for i := lo + 1; i < hi; i++ {
			suf = starPlusQuest(reQuest, &reNode{op: reConcat, flags: f, sub: []*reNode{re, suf}}, f)
		}
		if nre == nil {
			nre = suf
		} else {
			nre = &reNode{op: reConcat, flags: f, sub: []*reNode{nre, suf}}
		}
	}
	if nre == nil {
		return &reNode{op: reNoMatch, flags: f}
	}
	return nre
}

// anchor is RE2's IsAnchorStart/IsAnchorEnd: a leading \A (trailing \z) is
// removed from the tree and recorded on the program instead.
func anchor(n *reNode, depth int, end bool) (*reNode, bool) {
	if depth >= 4 {
		return n, false
	}
	want := reBeginText
	if end {
		want = reEndText
	}
	switch n.op {
	case reConcat:
		if len(n.sub) == 0 {
			return n, false
		}
		at := 0
		if end {
			at = len(n.sub) - 1
		}
		sub, ok := anchor(n.sub[at], depth+1, end)
		if !ok {
			return n, false
		}
		out := *n
		out.sub = append([]*reNode(nil), n.sub...)
		out.sub[at] = sub
		return &out, true
	case reCapture:
		sub, ok := anchor(n.sub[0], depth+1, end)
		if !ok {
			return n, false
		}
		out := *n
		out.sub = []*reNode{sub}
		return &out, true
	case want:
		return &reNode{op: reLiteralString, flags: n.flags}, true
	}
	return n, false
}
