package certs

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultGraceRatio is Istio's SECRET_GRACE_PERIOD_RATIO: rotate once less
// than half of a certificate's lifetime remains.
const DefaultGraceRatio = 0.5

// NeedsRotation reports whether the first certificate in certPEM should be
// replaced at now: when less than half its lifetime remains, moved earlier by
// jitter so a fleet issued together does not renew together. Unparseable
// input needs rotation, since it cannot be trusted to be valid.
func NeedsRotation(certPEM []byte, now time.Time, jitter time.Duration) bool {
	cert, err := ParseFirstCert(certPEM)
	if err != nil {
		return true
	}
	return !now.Before(rotateAt(cert, DefaultGraceRatio, jitter))
}

func rotateAt(cert *x509.Certificate, grace float64, jitter time.Duration) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Add(-time.Duration(float64(life)*grace) - jitter)
}

// ParseFirstCert parses the first certificate of a PEM chain (the leaf).
func ParseFirstCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM CERTIFICATE found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Issued is one certificate handed out by a Rotator's Issue function.
type Issued struct {
	CertChainPEM []byte // leaf first
	KeyPEM       []byte
}

// Rotator keeps a certificate fresh: it issues one, hands it to OnIssue, and
// issues the next before the current one reaches its grace period.
type Rotator struct {
	Issue   func(ctx context.Context) (Issued, error)
	OnIssue func(Issued)
	// OnError is told about failed issues; the Rotator retries with backoff
	// and keeps the previous certificate in place meanwhile.
	OnError func(error)

	GraceRatio  float64       // default DefaultGraceRatio
	JitterRatio float64       // rotate up to this fraction of the lifetime earlier; default 0.1, negative for none
	MinBackoff  time.Duration // first retry delay after a failure; default 1s
	MaxBackoff  time.Duration // default 1m
	Clock       Clock
	// Jitter returns a value in [0, n); injected so tests are deterministic.
	Jitter func(n int64) int64
}

// Run issues immediately, then re-issues until ctx is done, and returns ctx's error.
func (r *Rotator) Run(ctx context.Context) error {
	clock, grace, jitterRatio := r.Clock, r.GraceRatio, r.JitterRatio
	if clock == nil {
		clock = realClock{}
	}
	if grace <= 0 || grace >= 1 {
		grace = DefaultGraceRatio
	}
	if jitterRatio < 0 || jitterRatio >= grace {
		jitterRatio = 0
	} else if jitterRatio == 0 {
		jitterRatio = 0.1
	}
	jitterFn := r.Jitter
	if jitterFn == nil {
		jitterFn = rand.Int64N
	}
	minB, maxB := r.MinBackoff, r.MaxBackoff
	if minB <= 0 {
		minB = time.Second
	}
	if maxB < minB {
		maxB = max(time.Minute, minB)
	}

	backoff := minB
	for {
		var wait time.Duration
		issued, err := r.issueOnce(ctx)
		if err == nil {
			backoff = minB
			if r.OnIssue != nil {
				r.OnIssue(issued)
			}
			wait = r.nextWait(issued, clock.Now(), grace, jitterRatio, jitterFn)
		} else {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.OnError != nil {
				r.OnError(err)
			}
			wait = backoff
			backoff = min(backoff*2, maxB)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clock.After(wait):
		}
	}
}

func (r *Rotator) issueOnce(ctx context.Context) (Issued, error) {
	issued, err := r.Issue(ctx)
	if err != nil {
		return Issued{}, fmt.Errorf("issue certificate: %w", err)
	}
	if _, err := ParseFirstCert(issued.CertChainPEM); err != nil {
		return Issued{}, fmt.Errorf("issue certificate: issued chain unusable: %w", err)
	}
	return issued, nil
}

func (r *Rotator) nextWait(issued Issued, now time.Time, grace, jitterRatio float64, jitterFn func(int64) int64) time.Duration {
	cert, _ := ParseFirstCert(issued.CertChainPEM) // checked in issueOnce
	life := cert.NotAfter.Sub(cert.NotBefore)
	var jitter time.Duration
	if n := int64(float64(life) * jitterRatio); n > 0 {
		jitter = time.Duration(jitterFn(n))
	}
	// Never spin: an already-due certificate (tiny TTL, skewed clock) still
	// waits a moment before the next issue.
	return max(rotateAt(cert, grace, jitter).Sub(now), time.Second)
}
