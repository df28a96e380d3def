package xds

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
)

// ProxySyncStatus is one row of /debug/syncz: what was sent to and ACKed by a proxy.
type ProxySyncStatus struct {
	ProxyID     string                `json:"proxy"`
	Type        string                `json:"type"`
	Namespace   string                `json:"namespace"`
	Identity    string                `json:"identity,omitempty"` // SPIFFE ID the stream proved
	ConnectedAt time.Time             `json:"connected_at"`
	Types       map[string]TypeStatus `json:"types"`
}

// TypeStatus is the sync state of one xDS type for one proxy.
type TypeStatus struct {
	// State is SYNCED (proxy ACKed the current version), STALE (sent, not yet
	// ACKed or newer config waiting), NACKED or NOT SENT.
	State       string `json:"state"`
	Current     string `json:"current_version"`
	Sent        string `json:"sent_version"`
	Acked       string `json:"acked_version"`
	Resources   int    `json:"resources"`
	NackMessage string `json:"nack_message,omitempty"`
	Acks        int    `json:"acks"`
	Nacks       int    `json:"nacks"`
}

// SyncStatus reports every connected proxy's per-type sync state.
func (s *Server) SyncStatus() []ProxySyncStatus {
	var out []ProxySyncStatus
	for _, cn := range s.cache.snapshotConns() {
		cn.mu.Lock()
		ps := ProxySyncStatus{ProxyID: cn.id, Type: string(cn.proxy.Type), Namespace: cn.proxy.Namespace, Identity: cn.identity, ConnectedAt: cn.connectedAt, Types: map[string]TypeStatus{}}
		for t := cdsType; t < numTypes; t++ {
			if t == sdsType && cn.identity == "" {
				continue // no identity, no secrets: nothing to be in sync with
			}
			ts := cn.types[t]
			st := TypeStatus{Sent: ts.sentVersion, Acked: ts.ackedVersion, NackMessage: ts.nackMessage, Acks: ts.acks, Nacks: ts.nacks}
			if ts.set != nil {
				st.Current = ts.set.version
				st.Resources = ts.set.len()
			}
			switch {
			case ts.sentVersion == "":
				st.State = "NOT SENT"
			case ts.nackMessage != "" && ts.nackedVersion == ts.sentVersion:
				st.State = "NACKED"
			case ts.ackedVersion == ts.sentVersion && ts.sentVersion == st.Current:
				st.State = "SYNCED"
			default:
				st.State = "STALE"
			}
			ps.Types[typeLabels[t]] = st
		}
		cn.mu.Unlock()
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProxyID < out[j].ProxyID })
	return out
}

// DebugHandler serves /debug/syncz, /debug/connections and /debug/config_dump?proxyID=.
func (s *Server) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/syncz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.SyncStatus()) })
	mux.HandleFunc("/debug/changes", s.changes.serveHTTP)
	mux.HandleFunc("/debug/connections", func(w http.ResponseWriter, _ *http.Request) {
		var ids []string
		for _, cn := range s.cache.snapshotConns() {
			ids = append(ids, cn.id)
		}
		sort.Strings(ids)
		writeJSON(w, ids)
	})
	mux.HandleFunc("/debug/config_dump", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("proxyID")
		cn := s.cache.conn(id)
		if cn == nil {
			http.Error(w, "no connected proxy with ID "+id+" (see /debug/connections)", http.StatusNotFound)
			return
		}
		cn.mu.Lock()
		sets := make([]*resourceSet, numTypes)
		for t := range sets {
			sets[t] = cn.types[t].set
		}
		cn.mu.Unlock()
		dump := map[string]any{}
		for t, set := range sets {
			if set == nil {
				continue
			}
			if typeIndex(t) == sdsType {
				// Private keys never leave through a debug endpoint: names only.
				var names []string
				for _, it := range set.all() {
					names = append(names, it.name)
				}
				dump[typeLabels[t]] = map[string]any{"version": set.version, "names": names}
				continue
			}
			var list []json.RawMessage
			for _, it := range set.all() {
				b, err := protojson.Marshal(it.any)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				list = append(list, b)
			}
			dump[typeLabels[t]] = map[string]any{"version": set.version, "resources": list}
		}
		writeJSON(w, dump)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
