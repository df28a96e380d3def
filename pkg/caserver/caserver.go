// Package caserver serves Istio's CSR API, istio.v1.auth.IstioCertificateService,
// so stock istio-agent sidecars (and anything else holding a service-account
// token) can get workload certificates from mizzen's CA.
package caserver

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/mizzenmesh/mizzen/certs"
	"github.com/mizzenmesh/mizzen/pkg/authn"
)

// CASource returns the CA, or nil while it is not loaded yet (in Kubernetes
// mode it is read from Secrets in the background).
type CASource func() *certs.CA

// Server implements IstioCertificateService. Callers must be authenticated by
// the gRPC server's interceptors (authn.Interceptors): the certificate is
// always for the identity they proved, never for what the CSR asks.
type Server struct {
	pb.UnimplementedIstioCertificateServiceServer
	CA      CASource
	Log     *slog.Logger
	Metrics *Metrics
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { pb.RegisterIstioCertificateServiceServer(g, s) }

// CreateCertificate signs the CSR's public key for the caller's identity.
func (s *Server) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	s.Metrics.csrs.Inc()
	id, ok := authn.FromContext(ctx)
	if !ok {
		s.Metrics.AuthFailure("no_identity")
		return nil, status.Error(codes.Unauthenticated, "no authenticated identity")
	}
	ca := s.CA()
	if ca == nil {
		return nil, status.Error(codes.Unavailable, "the CA is not ready yet")
	}
	if req.GetValidityDuration() < 0 {
		s.Metrics.signErrors.Inc()
		return nil, status.Errorf(codes.InvalidArgument, "validity_duration %d is negative", req.GetValidityDuration())
	}
	// istio-agent writes the identity it expects into the CSR. The CA signs
	// only the proven one, and a CSR asking for another is refused outright
	// (not quietly signed for the caller), so a confused or hostile requester
	// learns at once, and the refusal is counted.
	if asked := requestedIDs(req.GetCsr()); len(asked) > 0 && (len(asked) > 1 || asked[0] != id.SpiffeID()) {
		s.Metrics.AuthFailure("identity_mismatch")
		s.Log.Warn("CSR refused: it asks for another identity than the caller proved", "caller", id.SpiffeID(), "asked", asked)
		return nil, status.Errorf(codes.PermissionDenied, "caller %s may not get a certificate for %v", id.SpiffeID(), asked)
	}
	ttl := time.Duration(req.GetValidityDuration()) * time.Second
	chain, err := ca.Sign([]byte(req.GetCsr()), id.SpiffeID(), ttl)
	if err != nil {
		s.Metrics.signErrors.Inc()
		s.Log.Warn("CSR refused", "identity", id.SpiffeID(), "err", err)
		return nil, status.Errorf(codes.InvalidArgument, "certificate for %s: %v", id.SpiffeID(), err)
	}
	resp := &pb.IstioCertificateResponse{CertChain: splitPEM(chain)}
	resp.CertChain = append(resp.CertChain, string(ca.RootCertPEM()))
	s.Metrics.issued.Inc()
	s.Log.Info("certificate issued", "identity", id.SpiffeID(), "via", id.Via, "ttl", ttl)
	return resp, nil
}

// requestedIDs lists the URI SANs a CSR asks for; an unparseable CSR gives
// none here and is refused by the CA with the reason.
func requestedIDs(csrPEM string) []string {
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil {
		return nil
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil
	}
	var out []string
	for _, u := range csr.URIs {
		out = append(out, u.String())
	}
	return out
}

// splitPEM returns each PEM block of data as its own string, as the CSR API
// lists the chain one certificate per entry.
func splitPEM(data []byte) []string {
	var out []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(b)))
	}
}

// Metrics are istiod's citadel_server_* counters.
type Metrics struct {
	csrs, issued, signErrors prometheus.Counter
	authFailures             *prometheus.CounterVec
}

// NewMetrics registers the CA server's metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		csrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_count",
			Help: "The number of CSRs received by Citadel server."}),
		issued: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_success_cert_issuance_count",
			Help: "The number of certificates issuances that have succeeded."}),
		signErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "citadel_server_csr_sign_err_count",
			Help: "The number of errors occurred when signing the CSR."}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "citadel_server_authentication_failure_count",
			Help: "The number of authentication failures, by reason."}, []string{"reason"}),
	}
	reg.MustRegister(m.csrs, m.issued, m.signErrors, m.authFailures)
	return m
}

// AuthFailure counts a refused caller of the CSR API.
func (m *Metrics) AuthFailure(reason string) {
	m.authFailures.WithLabelValues(reason).Inc()
}
