package model

import (
	"fmt"
	"strconv"
	"unicode"
)

// parseRE2 is RE2's Regexp::Parse with RE2::Options' defaults in Latin-1
// mode (Perl syntax, ^ and $ at text ends, \n allowed in classes): a stack
// parser that concatenates literals into strings as it goes and factors
// common prefixes out of alternations when it closes them. The tree it
// builds is RE2's, which is what the program size depends on. Syntax errors
// are left to Go's parser, which runs first; the errors here are the ones
// Latin-1 adds.

// reFlags are the parse flags that vary within a pattern; RE2's others
// (ClassNL, PerlX, PerlClasses, PerlB, UnicodeGroups, Latin1) are always on.
type reFlags uint8

const (
	reFoldCase reFlags = 1 << iota
	reDotNL
	reOneLine
	reNonGreedy
	reWasDollar
)

// Stack markers, never in a finished tree.
const (
	reLeftParen reOp = 100 + iota
	reVerticalBar
)

type re2Parser struct {
	flags reFlags
	stack []*reNode
	ncap  int
}

func parseRE2(pattern string) (*reNode, error) {
	p := &re2Parser{flags: reOneLine}
	s := []rune(latin1String(pattern))
	for i := 0; i < len(s); {
		var err error
		switch c := s[i]; c {
		case '(':
			if i+1 < len(s) && s[i+1] == '?' {
				i, err = p.perlFlags(s, i)
				break
			}
			p.ncap++
			p.pushRegexp(&reNode{op: reLeftParen, flags: p.flags, cap: p.ncap}, false)
			i++
		case '|':
			p.verticalBar()
			i++
		case ')':
			err = p.rightParen()
			i++
		case '^':
			if p.flags&reOneLine != 0 {
				p.pushSimple(reBeginText, p.flags)
			} else {
				p.pushSimple(reBeginLine, p.flags)
			}
			i++
		case '$':
			if p.flags&reOneLine != 0 {
				p.pushSimple(reEndText, p.flags|reWasDollar)
			} else {
				p.pushSimple(reEndLine, p.flags)
			}
			i++
		case '.':
			if p.flags&reDotNL != 0 {
				p.pushSimple(reAnyChar, p.flags)
			} else {
				var cc charSet
				cc.addRange(0, '\n'-1)
				cc.addRange('\n'+1, 0xff)
				p.pushRegexp(&reNode{op: reCharClass, flags: p.flags &^ reFoldCase, ranges: cc.ranges()}, true)
			}
			i++
		case '[':
			i, err = p.charClass(s, i)
		case '*', '+', '?':
			op := map[rune]reOp{'*': reStar, '+': rePlus, '?': reQuest}[c]
			i++
			nongreedy := i < len(s) && s[i] == '?'
			if nongreedy {
				i++
			}
			p.repeatOp(op, nongreedy)
		case '{':
			lo, hi, next, ok := parseRepetition(s, i)
			if !ok {
				p.pushLiteral('{')
				i++
				break
			}
			i = next
			nongreedy := i < len(s) && s[i] == '?'
			if nongreedy {
				i++
			}
			err = p.repetition(lo, hi, nongreedy)
		case '\\':
			i, err = p.escape(s, i)
		default:
			p.pushLiteral(c)
			i++
		}
		if err != nil {
			return nil, err
		}
	}
	return p.finish()
}

func (p *re2Parser) top() *reNode {
	if len(p.stack) == 0 {
		return nil
	}
	return p.stack[len(p.stack)-1]
}

func isMarker(n *reNode) bool { return n.op == reLeftParen || n.op == reVerticalBar }

func isLiteral(n *reNode) bool { return n.op == reLiteral || n.op == reLiteralString }

// maybeConcatString is MaybeConcatString: the two literals on top of the
// stack become one string; with r >= 0 the top is reused for literal r.
func (p *re2Parser) maybeConcatString(r rune, flags reFlags) bool {
	n := len(p.stack)
	if n < 2 {
		return false
	}
	re1, re2 := p.stack[n-1], p.stack[n-2]
	if !isLiteral(re1) || !isLiteral(re2) || (re1.flags^re2.flags)&reFoldCase != 0 {
		return false
	}
	re2.op = reLiteralString
	re2.runes = append(re2.runes, re1.runes...)
	if r >= 0 {
		*re1 = reNode{op: reLiteral, flags: flags, runes: []rune{r}}
		return true
	}
	p.stack = p.stack[:n-1]
	return false
}

// pushRegexp is PushRegexp. fresh: a class the parser just built, which
// RE2 rewrites when it holds one character ([.] is \.) or one ASCII letter
// in both cases ([Aa] is (?i)a).
func (p *re2Parser) pushRegexp(re *reNode, fresh bool) {
	p.maybeConcatString(-1, 0)
	if fresh && re.op == reCharClass {
		size := 0
		for i := 0; i+1 < len(re.ranges); i += 2 {
			size += int(re.ranges[i+1]-re.ranges[i]) + 1
		}
		switch {
		case size == 1:
			re = &reNode{op: reLiteral, flags: p.flags, runes: []rune{re.ranges[0]}}
		case size == 2 && 'A' <= re.ranges[0] && re.ranges[0] <= 'Z' && len(re.ranges) == 4 && re.ranges[2] == re.ranges[0]+'a'-'A':
			re = &reNode{op: reLiteral, flags: p.flags | reFoldCase, runes: []rune{re.ranges[0] + 'a' - 'A'}}
		}
	}
	p.stack = append(p.stack, re)
}

func (p *re2Parser) pushSimple(op reOp, flags reFlags) {
	p.pushRegexp(&reNode{op: op, flags: flags}, false)
}

// pushLiteral is PushLiteral in Latin-1 mode, where (?i) folds ASCII
// letters only.
func (p *re2Parser) pushLiteral(r rune) {
	if p.flags&reFoldCase != 0 && isASCIILetter(r) {
		var cc charSet
		cc.addFolded(r, r)
		p.pushRegexp(&reNode{op: reCharClass, flags: p.flags &^ reFoldCase, ranges: cc.ranges()}, true)
		return
	}
	if p.maybeConcatString(r, p.flags) {
		return
	}
	p.pushRegexp(&reNode{op: reLiteral, flags: p.flags, runes: []rune{r}}, false)
}

func isASCIILetter(r rune) bool { return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' }

// repeatOp is PushRepeatOp: x** and any mix of *, + and ? on one operand
// (only reachable through a group, (?:x*)+) squash to one *.
func (p *re2Parser) repeatOp(op reOp, nongreedy bool) {
	fl := p.flags
	if nongreedy {
		fl ^= reNonGreedy
	}
	top := p.top()
	if top == nil || isMarker(top) {
		return // Go's parser reported it
	}
	if op == top.op && fl == top.flags {
		return
	}
	if (top.op == reStar || top.op == rePlus || top.op == reQuest) && fl == top.flags {
		top.op = reStar
		return
	}
	p.stack[len(p.stack)-1] = &reNode{op: op, flags: fl, sub: []*reNode{top}}
}

func (p *re2Parser) repetition(lo, hi int, nongreedy bool) error {
	fl := p.flags
	if nongreedy {
		fl ^= reNonGreedy
	}
	top := p.top()
	if top == nil || isMarker(top) || lo > 1000 || hi > 1000 || (hi != -1 && hi < lo) {
		return fmt.Errorf("bad repetition operator")
	}
	re := &reNode{op: reRepeat, flags: fl, min: lo, max: hi, sub: []*reNode{top}}
	p.stack[len(p.stack)-1] = re
	if (lo >= 2 || hi >= 2) && repetitionBudget(re, 1000) == 0 {
		return fmt.Errorf("bad repetition operator: nested repetition exceeds 1000")
	}
	return nil
}

// repetitionBudget is RE2's RepetitionWalker: 1000 divided by the product
// of the nested repeat counts; 0 means the nesting is too deep.
func repetitionBudget(re *reNode, budget int) int {
	if re.op == reRepeat {
		m := re.max
		if m < 0 {
			m = re.min
		}
		if m > 0 {
			budget /= m
		}
	}
	least := budget
	for _, s := range re.sub {
		least = min(least, repetitionBudget(s, budget))
	}
	return least
}

// parseRepetition reads {n}, {n,} or {n,m}; false leaves { a literal.
func parseRepetition(s []rune, i int) (lo, hi, next int, ok bool) {
	j := i + 1
	num := func() (int, bool) {
		start := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == start || (j-start > 1 && s[start] == '0') || j-start > 8 {
			return 0, false
		}
		n, err := strconv.Atoi(string(s[start:j]))
		return n, err == nil
	}
	if lo, ok = num(); !ok || j >= len(s) {
		return 0, 0, 0, false
	}
	hi = lo
	if s[j] == ',' {
		j++
		if j < len(s) && s[j] == '}' {
			hi = -1
		} else if hi, ok = num(); !ok {
			return 0, 0, 0, false
		}
	}
	if j >= len(s) || s[j] != '}' {
		return 0, 0, 0, false
	}
	return lo, hi, j + 1, true
}

// perlFlags parses (?flags), (?flags:, (?P<name> and (?<name>.
func (p *re2Parser) perlFlags(s []rune, i int) (int, error) {
	j := i + 2
	if j < len(s) && (s[j] == '<' || (s[j] == 'P' && j+1 < len(s) && s[j+1] == '<')) {
		for j < len(s) && s[j] != '>' {
			j++
		}
		p.ncap++
		p.pushRegexp(&reNode{op: reLeftParen, flags: p.flags, cap: p.ncap}, false)
		return j + 1, nil
	}
	flags, negated := p.flags, false
	for ; j < len(s); j++ {
		var bit reFlags
		switch s[j] {
		case 'i':
			bit = reFoldCase
		case 's':
			bit = reDotNL
		case 'U':
			bit = reNonGreedy
		case 'm': // the opposite of OneLine
			if negated {
				flags |= reOneLine
			} else {
				flags &^= reOneLine
			}
			continue
		case '-':
			negated = true
			continue
		case ':':
			p.pushRegexp(&reNode{op: reLeftParen, flags: p.flags, cap: -1}, false)
			p.flags = flags
			return j + 1, nil
		case ')':
			p.flags = flags
			return j + 1, nil
		default:
			return 0, fmt.Errorf("invalid or unsupported Perl syntax")
		}
		if negated {
			flags &^= bit
		} else {
			flags |= bit
		}
	}
	return 0, fmt.Errorf("missing closing )")
}

// escape handles a backslash outside a class.
func (p *re2Parser) escape(s []rune, i int) (int, error) {
	if i+1 >= len(s) {
		return 0, fmt.Errorf("trailing backslash")
	}
	if op, ok := map[rune]reOp{'b': reWordBoundary, 'B': reNoWordBoundary, 'A': reBeginText, 'z': reEndText}[s[i+1]]; ok {
		p.pushSimple(op, p.flags)
		return i + 2, nil
	}
	switch s[i+1] {
	case 'Q':
		j := i + 2
		for ; j < len(s); j++ {
			if s[j] == '\\' && j+1 < len(s) && s[j+1] == 'E' {
				return j + 2, nil
			}
			p.pushLiteral(s[j])
		}
		return j, nil
	}
	var cc charSet
	if next, ok, err := cc.group(s, i, p.flags); err != nil || ok {
		if err == nil {
			p.pushRegexp(&reNode{op: reCharClass, flags: p.flags &^ reFoldCase, ranges: cc.ranges()}, true)
		}
		return next, err
	}
	r, next, err := parseEscape(s, i)
	if err != nil {
		return 0, err
	}
	p.pushLiteral(r)
	return next, nil
}

// parseEscape reads one escaped character: octal, \x hex (at most \x{ff}
// in Latin-1), \a \f \n \r \t \v, or escaped punctuation.
func parseEscape(s []rune, i int) (rune, int, error) {
	c := s[i+1]
	j := i + 2
	switch {
	case c >= '0' && c <= '7':
		if c != '0' && (j >= len(s) || s[j] < '0' || s[j] > '7') {
			return 0, 0, fmt.Errorf("invalid escape sequence: backreferences are not supported")
		}
		v := c - '0'
		for k := 0; k < 2 && j < len(s) && s[j] >= '0' && s[j] <= '7'; k++ {
			v = v*8 + s[j] - '0'
			j++
		}
		if v > 0xff {
			return 0, 0, fmt.Errorf("octal escape above \\377: Envoy's RE2 reads patterns as Latin-1")
		}
		return v, j, nil
	case c == 'x':
		if j < len(s) && s[j] == '{' {
			end := j + 1
			for end < len(s) && s[end] != '}' {
				end++
			}
			v, err := strconv.ParseUint(string(s[j+1:end]), 16, 32)
			if err != nil || end >= len(s) {
				return 0, 0, fmt.Errorf("invalid escape sequence: \\x{%s", string(s[j+1:min(end, len(s))]))
			}
			if v > 0xff {
				return 0, 0, fmt.Errorf("escape \\x{%s}: Envoy's RE2 reads patterns as Latin-1 and refuses characters above \\x{ff}", string(s[j+1:end]))
			}
			return rune(v), end + 1, nil
		}
		if j+2 > len(s) {
			return 0, 0, fmt.Errorf("invalid escape sequence")
		}
		v, err := strconv.ParseUint(string(s[j:j+2]), 16, 8)
		if err != nil {
			return 0, 0, fmt.Errorf("invalid escape sequence")
		}
		return rune(v), j + 2, nil
	}
	if r, ok := map[rune]rune{'a': 7, 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}[c]; ok {
		return r, j, nil
	}
	if c < 0x80 && !isWordChar(c) {
		return c, j, nil
	}
	return 0, 0, fmt.Errorf("invalid escape sequence: \\%c", c)
}

func isWordChar(c rune) bool {
	return c == '_' || isASCIILetter(c) || ('0' <= c && c <= '9')
}

// charClass parses [...] (ParseCharClass).
func (p *re2Parser) charClass(s []rune, i int) (int, error) {
	var cc charSet
	j := i + 1
	negated := j < len(s) && s[j] == '^'
	if negated {
		j++
	}
	for first := true; j < len(s) && (s[j] != ']' || first); first = false {
		if s[j] == '[' && j+1 < len(s) && s[j+1] == ':' {
			if next, ok := cc.posix(s, j, p.flags); ok {
				j = next
				continue
			}
		}
		if s[j] == '\\' {
			next, ok, err := cc.group(s, j, p.flags)
			if err != nil {
				return 0, err
			}
			if ok {
				j = next
				continue
			}
		}
		lo, next, err := classChar(s, j)
		if err != nil {
			return 0, err
		}
		hi := lo
		j = next
		if j+1 < len(s) && s[j] == '-' && s[j+1] != ']' {
			if hi, j, err = classChar(s, j+1); err != nil {
				return 0, err
			}
		}
		cc.addFlags(lo, hi, p.flags)
	}
	if j >= len(s) {
		return 0, fmt.Errorf("missing closing ]")
	}
	if negated {
		cc.negate()
	}
	p.pushRegexp(&reNode{op: reCharClass, flags: p.flags &^ reFoldCase, ranges: cc.ranges()}, true)
	return j + 1, nil
}

func classChar(s []rune, j int) (rune, int, error) {
	if s[j] != '\\' {
		return s[j], j + 1, nil
	}
	if j+1 >= len(s) {
		return 0, 0, fmt.Errorf("trailing backslash")
	}
	return parseEscape(s, j)
}

// charSet is a class restricted to Latin-1, which is all RE2 keeps of it
// (RemoveAbove); with ASCII-only case folding, negating and folding commute
// with that restriction.
type charSet [4]uint64

func (c *charSet) add(r rune)      { c[r/64] |= 1 << (r % 64) }
func (c *charSet) has(r rune) bool { return c[r/64]&(1<<(r%64)) != 0 }
func (c *charSet) addRange(lo, hi rune) {
	for r := lo; r <= min(hi, 0xff); r++ {
		c.add(r)
	}
}

// addFolded is AddFoldedRangeLatin1: each letter with its other case.
func (c *charSet) addFolded(lo, hi rune) {
	for r := lo; r <= min(hi, 0xff); r++ {
		c.add(r)
		switch {
		case 'A' <= r && r <= 'Z':
			c.add(r + 'a' - 'A')
		case 'a' <= r && r <= 'z':
			c.add(r - 'a' + 'A')
		}
	}
}

func (c *charSet) addFlags(lo, hi rune, flags reFlags) {
	if flags&reFoldCase != 0 {
		c.addFolded(lo, hi)
		return
	}
	c.addRange(lo, hi)
}

func (c *charSet) negate() {
	for i := range c {
		c[i] = ^c[i]
	}
}

func (c *charSet) ranges() []rune {
	var out []rune
	for r := rune(0); r <= 0xff; r++ {
		if !c.has(r) {
			continue
		}
		if n := len(out); n > 0 && out[n-1] == r-1 {
			out[n-1] = r
		} else {
			out = append(out, r, r)
		}
	}
	return out
}

// addGroup is AddUGroup: a named group, negated when sign < 0; under (?i)
// a negated group is folded first, then negated.
func (c *charSet) addGroup(g *charSet, negate bool, flags reFlags) {
	if negate {
		var pos charSet
		pos.addGroup(g, false, flags)
		pos.negate()
		for i := range c {
			c[i] |= pos[i]
		}
		return
	}
	for r := rune(0); r <= 0xff; r++ {
		if g.has(r) {
			c.addFlags(r, r, flags)
		}
	}
}

// group parses \d \s \w (and negations) and \p{..} \P{..} at s[i].
func (c *charSet) group(s []rune, i int, flags reFlags) (int, bool, error) {
	if i+1 >= len(s) {
		return i, false, nil
	}
	switch k := s[i+1]; k {
	case 'd', 'D', 's', 'S', 'w', 'W':
		var g charSet
		switch k {
		case 'd', 'D':
			g.addRange('0', '9')
		case 's', 'S':
			for _, r := range "\t\n\f\r " {
				g.add(r)
			}
		default:
			g.addRange('0', '9')
			g.addRange('A', 'Z')
			g.addRange('a', 'z')
			g.add('_')
		}
		c.addGroup(&g, k == 'D' || k == 'S' || k == 'W', flags)
		return i + 2, true, nil
	case 'p', 'P':
		negate := k == 'P'
		j := i + 2
		if j >= len(s) {
			return 0, false, fmt.Errorf("invalid character class range")
		}
		var name string
		if s[j] == '{' {
			end := j + 1
			for end < len(s) && s[end] != '}' {
				end++
			}
			if end >= len(s) {
				return 0, false, fmt.Errorf("invalid character class range")
			}
			name, j = string(s[j+1:end]), end+1
		} else {
			name, j = string(s[j]), j+1
		}
		if len(name) > 0 && name[0] == '^' {
			negate, name = !negate, name[1:]
		}
		g, ok := unicodeGroup(name)
		if !ok {
			return 0, false, fmt.Errorf("invalid character class range: \\p{%s}", name)
		}
		c.addGroup(g, negate, flags)
		return j, true, nil
	}
	return i, false, nil
}

func unicodeGroup(name string) (*charSet, bool) {
	var g charSet
	if name == "Any" {
		g.addRange(0, 0xff)
		return &g, true
	}
	t := unicode.Categories[name]
	if t == nil {
		t = unicode.Scripts[name]
	}
	if t == nil {
		return nil, false
	}
	for r := rune(0); r <= 0xff; r++ {
		if unicode.Is(t, r) {
			g.add(r)
		}
	}
	return &g, true
}

// posixClasses are RE2's [:name:] groups (ASCII).
var posixClasses = map[string][]rune{
	"alnum": {'0', '9', 'A', 'Z', 'a', 'z'}, "alpha": {'A', 'Z', 'a', 'z'}, "ascii": {0, 0x7f},
	"blank": {'\t', '\t', ' ', ' '}, "cntrl": {0, 0x1f, 0x7f, 0x7f}, "digit": {'0', '9'},
	"graph": {'!', '~'}, "lower": {'a', 'z'}, "print": {' ', '~'},
	"punct": {'!', '/', ':', '@', '[', '`', '{', '~'}, "space": {'\t', '\r', ' ', ' '},
	"upper": {'A', 'Z'}, "word": {'0', '9', 'A', 'Z', 'a', 'z', '_', '_'}, "xdigit": {'0', '9', 'A', 'F', 'a', 'f'},
}

func (c *charSet) posix(s []rune, i int, flags reFlags) (int, bool) {
	end := i + 2
	for end+1 < len(s) && !(s[end] == ':' && s[end+1] == ']') {
		end++
	}
	if end+1 >= len(s) {
		return i, false
	}
	name := string(s[i+2 : end])
	negate := len(name) > 0 && name[0] == '^'
	if negate {
		name = name[1:]
	}
	rs, ok := posixClasses[name]
	if !ok {
		return i, false
	}
	var g charSet
	for k := 0; k+1 < len(rs); k += 2 {
		g.addRange(rs[k], rs[k+1])
	}
	c.addGroup(&g, negate, flags)
	return end + 2, true
}

// verticalBar is DoVerticalBar: the branch so far is concatenated and kept
// under the bar; . absorbs a neighbouring literal or class.
func (p *re2Parser) verticalBar() {
	p.maybeConcatString(-1, 0)
	p.concatenation()
	n := len(p.stack)
	if n >= 2 && p.stack[n-2].op == reVerticalBar {
		r1 := p.stack[n-1]
		if n >= 3 {
			r3 := p.stack[n-3]
			absorbable := func(x *reNode) bool {
				return x.op == reLiteral || x.op == reCharClass || x.op == reAnyChar
			}
			if r3.op == reAnyChar && absorbable(r1) {
				p.stack = p.stack[:n-1]
				return
			}
			if r1.op == reAnyChar && absorbable(r3) {
				p.stack[n-3] = r1
				p.stack = p.stack[:n-1]
				return
			}
		}
		p.stack[n-2], p.stack[n-1] = r1, p.stack[n-2]
		return
	}
	p.pushSimple(reVerticalBar, p.flags)
}

func (p *re2Parser) concatenation() {
	if top := p.top(); top == nil || isMarker(top) {
		p.pushRegexp(&reNode{op: reEmptyMatch, flags: p.flags}, false)
	}
	p.collapse(reConcat)
}

func (p *re2Parser) alternation() {
	p.verticalBar()
	p.stack = p.stack[:len(p.stack)-1] // the vertical bar
	p.collapse(reAlternate)
}

// collapse is DoCollapse: everything above the last marker becomes one
// concatenation or alternation, nested ones of the same kind flattened.
func (p *re2Parser) collapse(op reOp) {
	i := len(p.stack)
	for i > 0 && !isMarker(p.stack[i-1]) {
		i--
	}
	if len(p.stack)-i == 1 {
		return
	}
	var subs []*reNode
	for _, s := range p.stack[i:] {
		if s.op == op {
			subs = append(subs, s.sub...)
		} else {
			subs = append(subs, s)
		}
	}
	re := concatOrAlternate(op, subs, p.flags, true)
	p.stack = append(p.stack[:i], re)
}

func (p *re2Parser) rightParen() error {
	p.alternation()
	n := len(p.stack)
	if n < 2 || p.stack[n-2].op != reLeftParen {
		return fmt.Errorf("unexpected )")
	}
	r1, paren := p.stack[n-1], p.stack[n-2]
	p.stack = p.stack[:n-2]
	p.flags = paren.flags
	re := r1
	if paren.cap > 0 {
		re = &reNode{op: reCapture, flags: paren.flags, cap: paren.cap, sub: []*reNode{r1}}
	}
	p.pushRegexp(re, false)
	return nil
}

func (p *re2Parser) finish() (*reNode, error) {
	p.alternation()
	if len(p.stack) != 1 {
		return nil, fmt.Errorf("missing closing )")
	}
	return p.stack[0], nil
}

func concatOrAlternate(op reOp, subs []*reNode, flags reFlags, factor bool) *reNode {
	switch len(subs) {
	case 0:
		if op == reAlternate {
			return &reNode{op: reNoMatch, flags: flags}
		}
		return &reNode{op: reEmptyMatch, flags: flags}
	case 1:
		return subs[0]
	}
	if op == reAlternate && factor {
		subs = factorAlternation(subs, flags)
		if len(subs) == 1 {
			return subs[0]
		}
	}
	return &reNode{op: op, flags: flags, sub: subs}
}

// factorAlternation is FactorAlternation: round 1 factors common literal
// prefixes (abc|abd is ab(?:c|d)), round 2 a common leading assertion,
// class, . or fixed repeat, each factored again inside; round 3 merges runs
// of literals and classes into one class.
func factorAlternation(sub []*reNode, flags reFlags) []*reNode {
	sub = factorRound(sub, flags, leadingStringRun)
	sub = factorRound(sub, flags, leadingRegexpRun)
	return mergeClasses(sub, flags)
}

// A run finder says how many of sub, from the first, share a factorable
// prefix, and cuts it off them, returning it.
type runFinder func(sub []*reNode) (n int, cut func() *reNode)

func factorRound(sub []*reNode, flags reFlags, run runFinder) []*reNode {
	var out []*reNode
	for i := 0; i < len(sub); {
		n, cut := run(sub[i:])
		if n < 2 {
			out = append(out, sub[i])
			i++
			continue
		}
		prefix := cut()
		suffixes := factorAlternation(sub[i:i+n], flags)
		out = append(out, &reNode{op: reConcat, flags: flags, sub: []*reNode{prefix, concatOrAlternate(reAlternate, suffixes, flags, false)}})
		i += n
	}
	return out
}

// leadingString finds the literal prefix common to a run.
func leadingString(re *reNode) ([]rune, reFlags) {
	for re.op == reConcat && len(re.sub) > 0 {
		re = re.sub[0]
	}
	if isLiteral(re) {
		return re.runes, re.flags & reFoldCase
	}
	return nil, re.flags & reFoldCase
}

func leadingStringRun(sub []*reNode) (int, func() *reNode) {
	runes, fl := leadingString(sub[0])
	common := len(runes)
	n := 1
	for ; n < len(sub) && common > 0; n++ {
		r, f := leadingString(sub[n])
		same := 0
		for same < common && same < len(r) && r[same] == runes[same] {
			same++
		}
		if f != fl || same == 0 {
			break
		}
		common = same
	}
	prefix := append([]rune(nil), runes[:common]...)
	return n, func() *reNode {
		for _, s := range sub[:n] {
			removeLeadingString(s, common)
		}
		if len(prefix) == 1 {
			return &reNode{op: reLiteral, flags: fl, runes: prefix}
		}
		return &reNode{op: reLiteralString, flags: fl, runes: prefix}
	}
}

// removeLeadingString is RemoveLeadingString, editing re in place.
func removeLeadingString(re *reNode, n int) {
	var stk []*reNode
	for re.op == reConcat {
		if len(stk) < 4 {
			stk = append(stk, re)
		}
		re = re.sub[0]
	}
	switch {
	case re.op == reLiteral || (re.op == reLiteralString && n >= len(re.runes)):
		*re = reNode{op: reEmptyMatch, flags: re.flags}
	case re.op == reLiteralString && n == len(re.runes)-1:
		*re = reNode{op: reLiteral, flags: re.flags, runes: []rune{re.runes[len(re.runes)-1]}}
	case re.op == reLiteralString:
		re.runes = re.runes[n:]
	}
	for d := len(stk) - 1; d >= 0; d-- {
		c := stk[d]
		if c.sub[0].op != reEmptyMatch {
			continue
		}
		if len(c.sub) == 2 {
			*c = *c.sub[1]
		} else {
			c.sub = c.sub[1:]
		}
	}
}

func leadingRegexp(re *reNode) *reNode {
	if re.op == reEmptyMatch {
		return nil
	}
	if re.op == reConcat && len(re.sub) >= 2 {
		if re.sub[0].op == reEmptyMatch {
			return nil
		}
		return re.sub[0]
	}
	return re
}

func removeLeadingRegexp(re *reNode) *reNode {
	switch {
	case re.op == reEmptyMatch:
		return re
	case re.op == reConcat && len(re.sub) >= 2:
		if re.sub[0].op == reEmptyMatch {
			return re
		}
		if len(re.sub) == 2 {
			return re.sub[1]
		}
		re.sub = re.sub[1:]
		return re
	}
	return &reNode{op: reEmptyMatch, flags: re.flags}
}

// factorableLead: what round 2 factors out of a run of alternatives.
func factorableLead(first *reNode) bool {
	switch first.op {
	case reBeginLine, reEndLine, reWordBoundary, reNoWordBoundary, reBeginText, reEndText, reCharClass, reAnyChar:
		return true
	case reRepeat:
		x := first.sub[0].op
		return first.min == first.max && (x == reLiteral || x == reCharClass || x == reAnyChar)
	}
	return false
}

func leadingRegexpRun(sub []*reNode) (int, func() *reNode) {
	first := leadingRegexp(sub[0])
	n := 1
	if first != nil && factorableLead(first) {
		for n < len(sub) {
			f := leadingRegexp(sub[n])
			if f == nil || !reEqual(first, f) {
				break
			}
			n++
		}
	}
	return n, func() *reNode {
		for j := range sub[:n] {
			sub[j] = removeLeadingRegexp(sub[j])
		}
		return first
	}
}

// mergeClasses is round 3: a run of literals and classes becomes a class.
func mergeClasses(sub []*reNode, flags reFlags) []*reNode {
	var out []*reNode
	for i := 0; i < len(sub); {
		j := i
		for j < len(sub) && (sub[j].op == reLiteral || sub[j].op == reCharClass) {
			j++
		}
		if j-i < 2 {
			out = append(out, sub[i])
			i++
			continue
		}
		var cc charSet
		for _, re := range sub[i:j] {
			if re.op == reCharClass {
				for k := 0; k+1 < len(re.ranges); k += 2 {
					cc.addRange(re.ranges[k], re.ranges[k+1])
				}
				continue
			}
			cc.addFlags(re.runes[0], re.runes[0], re.flags)
		}
		out = append(out, &reNode{op: reCharClass, flags: flags, ranges: cc.ranges()})
		i = j
	}
	return out
}
