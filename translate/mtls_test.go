package translate_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/mizzenmesh/mizzen/translate"
)

// A proxy without a proven identity is never sent the `default` and `ROOTCA`
// secrets, so nothing it gets may wait for one: Envoy would keep the listener
// or cluster (at startup, the whole proxy) warming until the fetch times out.
// Every golden case, every proxy translated as if it had no identity. (The
// exception: a gateway's certificate files, served by istio-agent.)
var agentFileSecret = regexp.MustCompile(`"name":\s*"file-(cert|root):`)

func TestNoSecretsWithoutIdentity(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	sawSDS := false
	for _, in := range cases {
		snap, proxies := loadCase(t, in)
		for _, tp := range proxies {
			withID := tp.Identity != ""
			tp.Identity = ""
			o := translate.ForProxy(snap, tp.parse(t))
			var msgs []proto.Message
			for _, c := range o.Clusters {
				msgs = append(msgs, c)
			}
			for _, l := range o.Listeners {
				msgs = append(msgs, l)
			}
			for _, m := range msgs {
				b, err := protojson.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				// Certificate files of a gateway run by istio-agent come from
				// the agent's SDS, which reads them whatever mizzen proved.
				files := len(agentFileSecret.FindAllIndex(b, -1))
				if strings.Count(string(b), `"sdsConfig"`) > files {
					t.Errorf("%s: %s without identity references an SDS secret: %s", filepath.Base(in), tp.ID, b)
				}
			}
			if withID {
				tp.Identity = "spiffe://cluster.local/ns/x/sa/y"
				for _, l := range translate.ForProxy(snap, tp.parse(t)).Listeners {
					b, _ := protojson.Marshal(l)
					sawSDS = sawSDS || strings.Contains(string(b), `"sdsConfig"`)
				}
			}
		}
	}
	if !sawSDS {
		t.Error("no proxy with an identity got an SDS secret: the test proves nothing")
	}
}
