package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mizzenmesh/mizzen/e2e/rig"
)

// TestServeOnBookinfoPrintsAddresses is `make run`'s contract: mizzen serves the
// bookinfo example and says where xDS, metrics and debug are; `mizzen version`
// answers; SIGTERM ends it promptly.
func TestServeOnBookinfoPrintsAddresses(t *testing.T) {
	mz := rig.StartMizzen(t, "--config-dir", "../examples/bookinfo")
	deadline := time.Now().Add(5 * time.Second)
	var log string
	for time.Now().Before(deadline) {
		log = mz.Log()
		if strings.Contains(log, "mizzen serving") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"xds=grpc://" + mz.XDSAddr, "metrics=http://" + mz.MonitoringAddr + "/metrics", "debug=http://" + mz.MonitoringAddr + "/debug/"} {
		if !strings.Contains(log, want) {
			t.Errorf("serve output lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "level=ERROR") {
		t.Errorf("the shipped example has errors:\n%s", log)
	}
	out, err := exec.Command(rig.MizzenBinary(t), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "mizzen ") {
		t.Errorf("mizzen version: %v %q", err, out)
	}
}

// TestProxyStatusShowsTheGateway: `mizzen proxy-status` lists a connected Envoy
// with every type SYNCED, as istioctl proxy-status would.
func TestProxyStatusShowsTheGateway(t *testing.T) {
	b := rig.Bookinfo(t)
	deadline := time.Now().Add(10 * time.Second)
	var out []byte
	for time.Now().Before(deadline) {
		var err error
		out, err = exec.Command(rig.MizzenBinary(t), "proxy-status", "--monitoring-addr", b.Mizzen.MonitoringAddr, "istio-ingressgateway-0").CombinedOutput()
		if err == nil && strings.Count(string(out), "SYNCED") == 4 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("proxy-status never showed the gateway SYNCED for cds, lds, eds, rds:\n%s", out)
}
