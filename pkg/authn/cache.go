package authn

import (
	"time"
)

// tokenKey is a token's SHA-256: caches never hold a token itself.
type tokenKey [32]byte

// answer is what the apiserver said about a token, and when.
type answer struct {
	id    Identity
	err   error // a definite Failure; nil for an accepted token
	at    time.Time
	until time.Time
}

// answers remembers the apiserver's answers by token hash until each one's
// deadline, in at most max entries. Not safe for concurrent use: the
// reviewer's mutex guards it.
type answers struct {
	max int
	m   map[tokenKey]answer
}

func newAnswers(max int) *answers { return &answers{max: max, m: map[tokenKey]answer{}} }

func (c *answers) get(k tokenKey, now time.Time) (answer, bool) {
	a, ok := c.m[k]
	if !ok {
		return answer{}, false
	}
	if !now.Before(a.until) {
		delete(c.m, k)
		return answer{}, false
	}
	return a, true
}

// put stores a; when full it first drops expired entries, then, if still
// full, arbitrary ones down to 7/8 of max, so a full cache costs one sweep
// per max/8 inserts and memory never grows past max.
func (c *answers) put(k tokenKey, a answer, now time.Time) {
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = a
}

func (c *answers) delete(k tokenKey) { delete(c.m, k) }

func (c *answers) len() int { return len(c.m) }
