package featuretests

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"github.com/mizzenmesh/mizzen/xds"
)

// debugGet asks the server's debug handler for path as a client at remote.
func debugGet(t *testing.T, h *harness, remote, path string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	xds.LoopbackOnly(h.srv.DebugHandler()).ServeHTTP(rec, req)
	return rec
}

// /debug/configz lists the served snapshot's inputs by kind and
// namespace/name; /debug/push_status tells the last push (version, trigger,
// proxies), the config errors by kind and code and each proxy's responses.
func TestDebugConfigzAndPushStatus(t *testing.T) {
	h := newHarness(t)
	in := bookinfo()
	h.start(in)
	c := h.connect(clientNode())
	c.start()
	c.syncFull()

	rec := debugGet(t, h, "127.0.0.1:40000", "/debug/configz")
	if rec.Code != http.StatusOK {
		t.Fatalf("configz: %d %s", rec.Code, rec.Body)
	}
	var cz struct {
		Version uint64                                `json:"version"`
		Objects map[string]map[string]json.RawMessage `json:"objects"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &cz); err != nil {
		t.Fatal(err)
	}
	if cz.Version != h.snap.Version {
		t.Errorf("configz version %d, want %d", cz.Version, h.snap.Version)
	}
	for kind, want := range map[string]int{"Service": 5, "EndpointSlice": 5, "Pod": 6, "DestinationRule": 1, "VirtualService": 1} {
		if got := len(cz.Objects[kind]); got != want {
			t.Errorf("configz has %d %s objects, want %d (kinds: %v)", got, kind, want, sortedKeys(cz.Objects))
		}
	}
	var vs networking.VirtualService
	if err := json.Unmarshal(cz.Objects["VirtualService"]["default/reviews"], &vs); err != nil || vs.Spec.GetHttp()[0].GetRoute()[0].GetDestination().GetSubset() != "v1" {
		t.Errorf("configz VirtualService default/reviews = %s (%v)", cz.Objects["VirtualService"]["default/reviews"], err)
	}
	rec = debugGet(t, h, "[::1]:40000", "/debug/configz?kind=Pod&name=client-0")
	cz.Objects = nil // Unmarshal would merge into the old map
	if err := json.Unmarshal(rec.Body.Bytes(), &cz); err != nil || len(cz.Objects) != 1 || len(cz.Objects["Pod"]) != 1 || cz.Objects["Pod"]["default/client-0"] == nil {
		t.Errorf("configz?kind=Pod&name=client-0 = %s (%v)", rec.Body, err)
	}

	// A change that only moves endpoints is an endpoint push; a VirtualService
	// naming an unknown subset is a config push with a warning.
	in.VirtualServices = append(in.VirtualServices, reviewsTo("v9"))
	in.VirtualServices[1].Name = "reviews-v9"
	in.VirtualServices[1].Spec.Hosts = []string{"details"}
	in.VirtualServices[1].Spec.Http[0].Route[0].Destination.Host = "details"
	snap := h.update(in)
	rec = debugGet(t, h, "127.0.0.1:40000", "/debug/push_status")
	var ps xds.PushStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &ps); err != nil {
		t.Fatalf("push_status: %v\n%s", err, rec.Body)
	}
	if ps.LastPush == nil || ps.LastPush.Version != snap.Version || ps.LastPush.Trigger != "config" || ps.LastPush.Proxies != 1 || ps.Pushes != 2 {
		t.Errorf("push_status last push = %+v, pushes %d; want version %d, trigger config, 1 proxy, 2 pushes\n%s", ps.LastPush, ps.Pushes, snap.Version, rec.Body)
	}
	if ps.ConfigErrors["VirtualService"]["ReferencedSubsetNotFound"] != 1 {
		t.Errorf("push_status config errors = %v, want VirtualService/ReferencedSubsetNotFound 1", ps.ConfigErrors)
	}
	if len(ps.Proxies) != 1 || ps.Proxies[0].ProxyID != c.node.GetId() || ps.Proxies[0].Types["cds"].Acks < 1 {
		t.Errorf("push_status proxies = %+v", ps.Proxies)
	}

	in.EndpointSlices[1].Endpoints = in.EndpointSlices[1].Endpoints[:1]
	snap = h.update(in)
	rec = debugGet(t, h, "127.0.0.1:40000", "/debug/push_status")
	if err := json.Unmarshal(rec.Body.Bytes(), &ps); err != nil {
		t.Fatal(err)
	}
	if ps.LastPush.Version != snap.Version || ps.LastPush.Trigger != "endpoint" || ps.Pushes != 3 {
		t.Errorf("after an endpoint change: last push = %+v, pushes %d", ps.LastPush, ps.Pushes)
	}

	// A poller that wants only the last push leaves out the proxies.
	rec = debugGet(t, h, "127.0.0.1:40000", "/debug/push_status?proxies=false")
	var short xds.PushStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &short); err != nil {
		t.Fatal(err)
	}
	if short.LastPush == nil || short.LastPush.Version != snap.Version || len(short.Proxies) != 0 || short.ConfigErrors["VirtualService"]["ReferencedSubsetNotFound"] != 1 {
		t.Errorf("push_status?proxies=false = %s; want the last push and the errors, no proxies", rec.Body)
	}
}

// Debug views answer loopback clients only; anyone else gets 403 saying why.
func TestDebugRefusesRemoteClients(t *testing.T) {
	h := newHarness(t)
	h.start(bookinfo())
	for _, path := range []string{"/debug/configz", "/debug/push_status", "/debug/syncz", "/debug/connections", "/debug/config_dump?proxyID=x"} {
		rec := debugGet(t, h, "198.18.0.7:5555", path)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "loopback") {
			t.Errorf("GET %s from 198.18.0.7: %d %q, want 403 naming loopback", path, rec.Code, rec.Body)
		}
		if rec := debugGet(t, h, "127.0.0.1:5555", path); rec.Code == http.StatusForbidden {
			t.Errorf("GET %s from loopback refused: %s", path, rec.Body)
		}
	}
}
