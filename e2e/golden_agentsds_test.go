package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/mizzenmesh/mizzen/certs"
)

// startAgentSDSStub stands in for istio-agent's SDS server (the sds-grpc
// cluster of its bootstrap) for a golden-case Envoy that has no agent: it serves
// `default` (a certificate for identity from a throwaway CA) and `ROOTCA` to
// node id, so the Envoy's mTLS clusters and listeners warm as they would next
// to a real agent. Returns its loopback address.
func startAgentSDSStub(t *testing.T, id, identity string) string {
	t.Helper()
	ca, err := certs.LoadOrCreate(context.Background(), certs.FileStore{Dir: t.TempDir()}, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chain, key, err := ca.GenerateLeaf(identity, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inline := func(b []byte) *core.DataSource {
		return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
	}
	snapCache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	snap, err := cachev3.NewSnapshot("1", map[resourcev3.Type][]types.Resource{resourcev3.SecretType: {
		&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(chain), PrivateKey: inline(key)}}},
		&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(ca.TrustBundlePEM())}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := snapCache.SetSnapshot(ctx, id, snap); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	secretv3.RegisterSecretDiscoveryServiceServer(gs, serverv3.NewServer(ctx, snapCache, nil))
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() { cancel(); gs.Stop() })
	return lis.Addr().String()
}
