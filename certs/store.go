package certs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File and Secret keys, as Istio names them. Self-signed roots live in Secret
// istio-ca-secret (ca-cert.pem, ca-key.pem); plug-in CAs come from Secret
// cacerts (all four).
const (
	CACertFile    = "ca-cert.pem"
	CAKeyFile     = "ca-key.pem"
	RootCertFile  = "root-cert.pem"
	CertChainFile = "cert-chain.pem"
)

var (
	// ErrNotFound means the store holds no CA yet; LoadOrCreate then creates one.
	ErrNotFound = errors.New("no CA material stored")
	// ErrExists is returned by Put when material is already stored, so that two
	// mizzen replicas racing to create a root converge on whichever won.
	ErrExists = errors.New("CA material already stored")
)

// Material is the CA's persisted form, in Istio's layout. RootCert and
// CertChain are empty for a self-signed root (the CA cert is the root).
type Material struct {
	CACert    []byte // signing certificate
	CAKey     []byte // its private key
	RootCert  []byte // plug-in only: the root the chain ends at
	CertChain []byte // plug-in only: CACert followed by intermediates (possibly the root)
}

// PlugIn reports whether the material is an intermediate under an external root.
func (m *Material) PlugIn() bool { return len(m.RootCert) > 0 }

// Files maps the material to Istio's file/Secret keys, omitting empty entries,
// so a Kubernetes Secret store can reuse it as Secret data.
func (m *Material) Files() map[string][]byte {
	out := map[string][]byte{}
	for k, v := range map[string][]byte{
		CACertFile: m.CACert, CAKeyFile: m.CAKey, RootCertFile: m.RootCert, CertChainFile: m.CertChain,
	} {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

// MaterialFromFiles is the inverse of Files.
func MaterialFromFiles(files map[string][]byte) *Material {
	return &Material{
		CACert:    files[CACertFile],
		CAKey:     files[CAKeyFile],
		RootCert:  files[RootCertFile],
		CertChain: files[CertChainFile],
	}
}

// Store persists CA material. Get returns an error wrapping ErrNotFound when
// nothing is stored; Put must not overwrite and returns an error wrapping
// ErrExists instead.
type Store interface {
	Get(ctx context.Context) (*Material, error)
	Put(ctx context.Context, m *Material) error
}

// FileStore keeps material as Istio-named files in Dir, for cluster-less mode.
// A Dir holding root-cert.pem is treated as a plug-in CA. It assumes a single
// writer (one mizzen process per directory).
type FileStore struct {
	Dir string
}

func (s FileStore) Get(ctx context.Context) (*Material, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, name := range []string{CACertFile, CAKeyFile, RootCertFile, CertChainFile} {
		b, err := os.ReadFile(filepath.Join(s.Dir, name))
		switch {
		case err == nil:
			files[name] = b
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, fmt.Errorf("read CA file: %w", err)
		}
	}
	if files[CACertFile] == nil {
		if files[RootCertFile] != nil || files[CertChainFile] != nil {
			// An operator's plug-in CA with a file missing must not be
			// "repaired" by minting a self-signed root next to it.
			return nil, fmt.Errorf("%s: plug-in CA files present but %s missing", s.Dir, CACertFile)
		}
		if files[CAKeyFile] != nil {
			// ca-cert.pem is written last, so a key without it is a crashed
			// Put; treating it as empty lets LoadOrCreate start over.
			return nil, fmt.Errorf("%s: %w (ignoring %s left without its certificate)", s.Dir, ErrNotFound, CAKeyFile)
		}
		return nil, fmt.Errorf("%s: %w", s.Dir, ErrNotFound)
	}
	return MaterialFromFiles(files), nil
}

func (s FileStore) Put(ctx context.Context, m *Material) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create CA directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, CACertFile)); err == nil {
		return fmt.Errorf("%s: %w", s.Dir, ErrExists)
	}
	// The certificate goes last: its presence is what marks the set complete.
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{CAKeyFile, m.CAKey, 0o600},
		{RootCertFile, m.RootCert, 0o644},
		{CertChainFile, m.CertChain, 0o644},
		{CACertFile, m.CACert, 0o644},
	} {
		if len(f.data) == 0 {
			continue
		}
		if err := writeFileAtomic(filepath.Join(s.Dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("store CA material: %w", err)
		}
	}
	return nil
}

// writeFileAtomic sets the mode before any byte is written so the key is never
// readable by others, even briefly, and renames so readers never see half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
