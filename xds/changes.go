package xds

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxChanges is how many config changes /debug/changes remembers.
const maxChanges = 64

// change is one pushed snapshot, traced until every proxy it touched ACKed or
// NACKed it: "did my change reach every sidecar, and when?".
type change struct {
	ID        uint64                  `json:"id"` // the snapshot version
	Trigger   string                  `json:"trigger"`
	At        time.Time               `json:"at"`                  // when the source saw the change
	PushedAt  time.Time               `json:"pushed_at,omitempty"` // when the push finished building
	Changed   map[string][]string     `json:"changed,omitempty"`   // resource names that differ, in the unscoped view
	Truncated bool                    `json:"changed_truncated,omitempty"`
	Proxies   map[string]*proxyChange `json:"proxies"`
}

// proxyChange is how one proxy took a change.
type proxyChange struct {
	State       string        `json:"state"` // PENDING, ACKED, NACKED, DISCONNECTED
	Types       []string      `json:"types"` // the types the change gave it new versions of
	AckedAt     time.Time     `json:"acked_at,omitempty"`
	Latency     time.Duration `json:"latency_ns,omitempty"` // AckedAt - change.At
	NackType    string        `json:"nack_type,omitempty"`
	NackMessage string        `json:"nack_message,omitempty"`
	// NackResources: the resources of the rejected response Envoy's message names.
	NackResources []string `json:"nack_resources,omitempty"`
}

// pendingChange is the part of a change a proxy has not ACKed yet (kept on the conn).
type pendingChange struct {
	ch      *change
	pending typeVersions // type -> version that carries the change
}

// typeVersions is a version per type, "" for none: a proxy's types waiting
// on a change. An array, not a map: it is made per proxy and push.
type typeVersions [numTypes]string

func (tv *typeVersions) empty() bool { return *tv == typeVersions{} }

// changeLog keeps the last maxChanges changes.
type changeLog struct {
	mu      sync.Mutex
	changes []*change // oldest first
	acks    prometheus.Histogram
}

func newChangeLog(reg prometheus.Registerer) *changeLog {
	l := &changeLog{acks: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mizzen_change_ack_seconds",
		Help:    "Time from a config change to each proxy it touched ACKing every type the change affected.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}})}
	if reg != nil {
		states := []string{"PENDING", "ACKED", "NACKED", "DISCONNECTED"}
		for _, st := range states {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mizzen_change_last_proxies",
				Help:        "Proxies touched by the latest config change, by state (PENDING, ACKED, NACKED, DISCONNECTED).",
				ConstLabels: prometheus.Labels{"state": st}}, func() float64 { return float64(l.lastCount(st)) }))
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mizzen_change_last_id",
			Help: "ID (snapshot version) of the latest config change; see /debug/changes?id=."}, func() float64 { return float64(l.lastID()) }))
		reg.MustRegister(l.acks)
	}
	return l
}

func (l *changeLog) start(ch *change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, ch)
	if len(l.changes) > maxChanges {
		l.changes = l.changes[len(l.changes)-maxChanges:]
	}
}

func (l *changeLog) pushed(ch *change, at time.Time) {
	l.mu.Lock()
	ch.PushedAt = at
	l.mu.Unlock()
}

// touched records that the change gave a proxy new versions of types.
func (l *changeLog) touched(ch *change, proxyID string, types typeVersions) {
	pc := &proxyChange{State: "PENDING"}
	for t, v := range types {
		if v == "" {
			continue
		}
		if pc.Types == nil {
			// The usual case (an endpoint change: EDS only): one shared,
			// read-only slice per type instead of one per proxy.
			pc.Types = singleTypeLabels[t]
		} else {
			pc.Types = append(slices.Clip(pc.Types), typeLabels[t])
		}
	}
	if len(pc.Types) > 1 {
		sort.Strings(pc.Types)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ch.Proxies[proxyID] = pc
}

// singleTypeLabels[t] is []string{typeLabels[t]}, shared by every
// proxyChange of that one type; never written.
var singleTypeLabels = func() (out [numTypes][]string) {
	for t := range out {
		out[t] = []string{typeLabels[t]}
	}
	return out
}()

func (l *changeLog) acked(ch *change, proxyID string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pc := ch.Proxies[proxyID]; pc != nil && pc.State == "PENDING" {
		pc.State, pc.AckedAt, pc.Latency = "ACKED", at, at.Sub(ch.At)
		l.acks.Observe(pc.Latency.Seconds())
	}
}

func (l *changeLog) nacked(ch *change, proxyID string, t typeIndex, msg string, names []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pc := ch.Proxies[proxyID]; pc != nil && pc.State == "PENDING" {
		pc.State, pc.NackType, pc.NackMessage, pc.NackResources = "NACKED", typeLabels[t], msg, names
	}
}

func (l *changeLog) disconnected(ch *change, proxyID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pc := ch.Proxies[proxyID]; pc != nil && pc.State == "PENDING" {
		pc.State = "DISCONNECTED"
	}
}

func (l *changeLog) lastCount(state string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.changes) == 0 {
		return 0
	}
	n := 0
	for _, pc := range l.changes[len(l.changes)-1].Proxies {
		if pc.State == state {
			n++
		}
	}
	return n
}

func (l *changeLog) lastID() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.changes) == 0 {
		return 0
	}
	return l.changes[len(l.changes)-1].ID
}

// changeSummary is a row of /debug/changes.
type changeSummary struct {
	*change
	Counts map[string]int `json:"counts"`
}

// serveHTTP: /debug/changes lists recent changes (newest first) with per-state
// counts; ?id=N shows one with every proxy; &proxies=0 leaves proxies out.
func (l *changeLog) serveHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	want, _ := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
	withProxies := r.URL.Query().Get("proxies") != "0"
	var out []changeSummary
	for i := len(l.changes) - 1; i >= 0; i-- {
		ch := l.changes[i]
		if want != 0 && ch.ID != want {
			continue
		}
		cs := changeSummary{Counts: map[string]int{}}
		c := *ch
		for _, pc := range ch.Proxies {
			cs.Counts[pc.State]++
		}
		if !withProxies {
			c.Proxies = nil
		} else {
			c.Proxies = make(map[string]*proxyChange, len(ch.Proxies))
			for id, pc := range ch.Proxies {
				cp := *pc
				c.Proxies[id] = &cp
			}
		}
		cs.change = &c
		out = append(out, cs)
	}
	if want != 0 && len(out) == 0 {
		http.Error(w, "no change "+strconv.FormatUint(want, 10)+" (only the last "+strconv.Itoa(maxChanges)+" are kept)", http.StatusNotFound)
		return
	}
	writeJSON(w, out)
}

// ChangeRef is a proxy's part in the latest change that touched it.
type ChangeRef struct {
	ID      uint64        `json:"id"`
	State   string        `json:"state"`
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// lastFor returns the latest change that touched proxyID, if one is kept.
func (l *changeLog) lastFor(proxyID string) *ChangeRef {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.changes) - 1; i >= 0; i-- {
		if pc := l.changes[i].Proxies[proxyID]; pc != nil {
			return &ChangeRef{ID: l.changes[i].ID, State: pc.State, Latency: pc.Latency}
		}
	}
	return nil
}
