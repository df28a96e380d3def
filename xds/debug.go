package xds

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// ProxySyncStatus is one row of /debug/syncz: what was sent to and ACKed by a proxy.
type ProxySyncStatus struct {
	ProxyID   string `json:"proxy"`
	Type      string `json:"type"`
	Namespace string `json:"namespace"`
	Identity  string `json:"identity,omitempty"` // SPIFFE ID the stream proved
	// Protocol is the stream's flavour of xDS: "sotw" or "delta".
	Protocol string `json:"protocol"`
	// LastChange is the latest config change (see /debug/changes) that gave
	// this proxy new config, and whether it ACKed it.
	LastChange  *ChangeRef            `json:"last_change,omitempty"`
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
	// NackedResources are the resources of the rejected response that Envoy's
	// message names (delta: of that response; SotW: of the whole set).
	NackedResources []string `json:"nacked_resources,omitempty"`
	Acks            int      `json:"acks"`
	Nacks           int      `json:"nacks"`
}

// SyncStatus reports every connected proxy's per-type sync state.
func (s *Server) SyncStatus() []ProxySyncStatus {
	var out []ProxySyncStatus
	for _, cn := range s.cache.snapshotConns() {
		cn.mu.Lock()
		ps := ProxySyncStatus{ProxyID: cn.id, Type: string(cn.proxy.Type), Namespace: cn.proxy.Namespace, Identity: cn.identity, ConnectedAt: cn.connectedAt, Types: map[string]TypeStatus{}, Protocol: "sotw"}
		for t := cdsType; t < numTypes; t++ {
			if t == sdsType && (cn.identity == "" || (cn.proxy.AgentSDS() && cn.types[t].set == nil)) {
				// No identity, no secrets; or istio-agent's proxy, whose
				// certificate the agent serves: nothing to be in sync with.
				continue
			}
			ts := cn.types[t]
			if ts.dstate != nil {
				ps.Protocol = "delta"
			}
			st := TypeStatus{Sent: ts.sentVersion, Acked: ts.ackedVersion, NackMessage: ts.nackMessage, NackedResources: ts.nackedNames, Acks: ts.acks, Nacks: ts.nacks}
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
		ps.LastChange = s.changes.lastFor(cn.id)
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProxyID < out[j].ProxyID })
	return out
}

// DebugHandler serves /debug/syncz, /debug/connections, /debug/config_dump?proxyID=,
// /debug/configz, /debug/push_status and /debug/changes. Whoever serves it
// decides who may ask: mizzen serve wraps it in LoopbackOnly.
func (s *Server) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/configz", s.serveConfigz)
	mux.HandleFunc("/debug/push_status", func(w http.ResponseWriter, r *http.Request) {
		// ?proxies=false leaves out the per-proxy rows: on a large mesh they
		// are most of the page, and a poller wants only the last push.
		writeJSON(w, s.pushStatus(r.URL.Query().Get("proxies") != "false"))
	})
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
				// Private keys never leave through a debug endpoint: secrets
				// go out without them (certificates are public), so
				// proxy-config secret can show serials and validity.
				var names []string
				var list []json.RawMessage
				for _, it := range set.all() {
					names = append(names, it.name)
					b, err := publicSecretJSON(it.any)
					if err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					list = append(list, b)
				}
				dump[typeLabels[t]] = map[string]any{"version": set.version, "names": names, "resources": list}
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

// publicSecretJSON renders an SDS secret without anything private: of a
// certificate only the chain (and OCSP staple), a validation context as is
// (CA certificates are public), any other kind of secret by name only.
func publicSecretJSON(a *anypb.Any) ([]byte, error) {
	sec := &tlsv3.Secret{}
	if err := a.UnmarshalTo(sec); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	switch t := sec.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		c := t.TlsCertificate
		sec.Type = &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: c.GetCertificateChain(), OcspStaple: c.GetOcspStaple(), WatchedDirectory: c.GetWatchedDirectory(),
		}}
	case *tlsv3.Secret_ValidationContext:
	default:
		sec.Type = nil
	}
	pub, err := anypb.New(sec)
	if err != nil {
		return nil, err
	}
	return protojson.Marshal(pub)
}

// LoopbackOnly lets only loopback clients through. Debug views show every
// proxy's config and the mesh's objects, so, as istiod does for its debug
// endpoints, they are not served to the network even when the monitoring port
// is (Prometheus scrapes /metrics from another pod). kubectl port-forward
// arrives on loopback, so it still works.
func LoopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			http.Error(w, fmt.Sprintf("%s is served to loopback clients only (you are %s); use kubectl port-forward or run the client on mizzen's host",
				r.URL.Path, r.RemoteAddr), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pushLog keeps the last push for /debug/push_status.
type pushLog struct {
	mu    sync.Mutex
	last  *PushRecord
	total uint64
}

// PushRecord describes one push: a snapshot turned into a generation and
// handed to every connected proxy.
type PushRecord struct {
	Version uint64 `json:"version"`
	// Trigger is "config" (clusters, listeners and routes rebuilt) or
	// "endpoint" (only endpoints changed, only EDS pushed).
	Trigger  string        `json:"trigger,omitempty"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"-"`
	// Took is Duration as text ("1.2ms"), set by record.
	Took    string `json:"duration"`
	Proxies int    `json:"proxies"`
	// Error is set when the generation could not be built: proxies kept the
	// previous one.
	Error string `json:"error,omitempty"`
}

// record is called by push once per snapshot.
func (l *pushLog) record(r PushRecord) {
	r.Took = r.Duration.String()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = &r
	l.total++
}

func (l *pushLog) get() (*PushRecord, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last, l.total
}

// PushStatus is /debug/push_status: the last push, the config errors of the
// snapshot being served, and each proxy's responses per type.
type PushStatus struct {
	LastPush *PushRecord `json:"last_push,omitempty"`
	// Pushes counts the snapshots pushed since start.
	Pushes uint64 `json:"pushes"`
	// ServedVersion is the snapshot version proxies are given now (differs
	// from LastPush.Version when the last push failed).
	ServedVersion uint64 `json:"served_version"`
	Services      int    `json:"services"`
	// ConfigErrors counts the served snapshot's problems by kind and code
	// (warnings included); ConfigErrorList names each object and field.
	ConfigErrors    map[string]map[string]int `json:"config_errors"`
	ConfigErrorList []ConfigErrorRow          `json:"config_error_list,omitempty"`
	Proxies         []ProxyPushes             `json:"proxies"`
}

// ConfigErrorRow is a model.ConfigError with JSON names.
type ConfigErrorRow struct {
	Level     string `json:"level"`
	Code      string `json:"code"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
}

// ProxyPushes is one proxy's share of the pushes: per type, how many
// responses it answered (ACK or NACK) and when the last one was sent.
type ProxyPushes struct {
	ProxyID string                   `json:"proxy"`
	Types   map[string]TypePushCount `json:"types"`
}

// TypePushCount counts one type's responses to one proxy.
type TypePushCount struct {
	Responses int       `json:"responses"`
	Acks      int       `json:"acks"`
	Nacks     int       `json:"nacks"`
	Version   string    `json:"sent_version,omitempty"`
	LastSent  time.Time `json:"last_sent,omitzero"`
	Resources int       `json:"resources"`
}

// PushStatus reports the last push as /debug/push_status shows it.
func (s *Server) PushStatus() PushStatus { return s.pushStatus(true) }

func (s *Server) pushStatus(perProxy bool) PushStatus {
	last, total := s.pushes.get()
	st := PushStatus{LastPush: last, Pushes: total, ConfigErrors: map[string]map[string]int{}}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	if gen != nil {
		st.ServedVersion = gen.snap.Version
		st.Services = len(gen.snap.Services())
		for _, e := range gen.snap.Errors {
			if st.ConfigErrors[e.Kind] == nil {
				st.ConfigErrors[e.Kind] = map[string]int{}
			}
			st.ConfigErrors[e.Kind][e.Code]++
			level := "Error"
			if e.Warning {
				level = "Warning"
			}
			st.ConfigErrorList = append(st.ConfigErrorList, ConfigErrorRow{level, e.Code, e.Kind, e.Namespace, e.Name, e.Field, e.Message})
		}
	}
	if !perProxy {
		return st
	}
	for _, cn := range s.cache.snapshotConns() {
		pp := ProxyPushes{ProxyID: cn.id, Types: map[string]TypePushCount{}}
		cn.mu.Lock()
		for t := cdsType; t < numTypes; t++ {
			ts := cn.types[t]
			c := TypePushCount{Responses: ts.acks + ts.nacks, Acks: ts.acks, Nacks: ts.nacks, Version: ts.sentVersion, LastSent: ts.sentAt}
			if ts.set != nil {
				c.Resources = ts.set.len()
			}
			pp.Types[typeLabels[t]] = c
		}
		cn.mu.Unlock()
		st.Proxies = append(st.Proxies, pp)
	}
	sort.Slice(st.Proxies, func(i, j int) bool { return st.Proxies[i].ProxyID < st.Proxies[j].ProxyID })
	return st
}

// serveConfigz writes the served snapshot's inputs, every object by kind and
// "namespace/name" (cluster-scoped objects by name), optionally narrowed by
// ?kind=, ?namespace= and ?name=. Secrets are shown without their data.
func (s *Server) serveConfigz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	if gen == nil || gen.snap.Inputs == nil {
		http.Error(w, "no config snapshot built yet", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	objs, err := configzObjects(gen.snap.Inputs, q.Get("kind"), q.Get("namespace"), q.Get("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"version": gen.snap.Version, "objects": objs})
}

// configzObjects lists model.Inputs by reflection, so a kind added to Inputs
// shows up here without anyone remembering to. Every field of Inputs is a
// slice of Kubernetes objects; the kind is the element type's name.
func configzObjects(in *model.Inputs, kind, ns, name string) (map[string]map[string]json.RawMessage, error) {
	out := map[string]map[string]json.RawMessage{}
	v := reflect.ValueOf(in).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Pointer {
			continue
		}
		k := f.Type().Elem().Elem().Name()
		if kind != "" && kind != k {
			continue
		}
		for j := 0; j < f.Len(); j++ {
			obj, ok := f.Index(j).Interface().(metav1.Object)
			if !ok || obj == nil || reflect.ValueOf(obj).IsNil() {
				continue
			}
			if (ns != "" && obj.GetNamespace() != ns) || (name != "" && obj.GetName() != name) {
				continue
			}
			b, err := configzJSON(obj)
			if err != nil {
				return nil, fmt.Errorf("%s %s/%s: %w", k, obj.GetNamespace(), obj.GetName(), err)
			}
			if out[k] == nil {
				out[k] = map[string]json.RawMessage{}
			}
			key := obj.GetName()
			if obj.GetNamespace() != "" {
				key = obj.GetNamespace() + "/" + key
			}
			out[k][key] = b
		}
	}
	return out, nil
}

// configzJSON is an input object as /debug/configz shows it: a Secret by
// name, type and key names only (see secretSummary), anything else without
// its managedFields.
func configzJSON(obj metav1.Object) ([]byte, error) {
	if sec, ok := obj.(*corev1.Secret); ok {
		return json.Marshal(secretSummary(sec))
	}
	return marshalWithoutManagedFields(obj)
}

// secretView is what the debug views show of a Secret.
type secretView struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Type     corev1.SecretType `json:"type,omitempty"`
	// Keys are the names under data and stringData; their values (gateway
	// TLS private keys among them) are never shown.
	Keys []string `json:"keys"`
}

// secretSummary keeps a Secret's name, labels, type and key names. The
// values are private keys: the debug port is loopback-only, but anyone who
// may port-forward to mizzen must not read every gateway's key through it.
// Annotations are dropped too (kubectl's last-applied-configuration holds
// the whole Secret, data included), as is managedFields.
func secretSummary(s *corev1.Secret) secretView {
	v := secretView{Type: s.Type, Keys: []string{}}
	v.Metadata = metav1.ObjectMeta{
		Name: s.Name, Namespace: s.Namespace, UID: s.UID, ResourceVersion: s.ResourceVersion,
		CreationTimestamp: s.CreationTimestamp, Labels: s.Labels,
	}
	seen := map[string]bool{}
	for k := range s.Data {
		seen[k] = true
	}
	for k := range s.StringData {
		seen[k] = true
	}
	for k := range seen {
		v.Keys = append(v.Keys, k)
	}
	sort.Strings(v.Keys)
	return v
}

// marshalWithoutManagedFields drops server-side-apply bookkeeping, which is
// most of an object's bytes and none of what mizzen reads.
func marshalWithoutManagedFields(obj metav1.Object) ([]byte, error) {
	if len(obj.GetManagedFields()) == 0 {
		return json.Marshal(obj)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "managedFields")
	}
	return json.Marshal(m)
}
