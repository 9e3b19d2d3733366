// Package tlsreload serves and dials TLS with a certificate, key and CA bundle read from PEM
// files that may be replaced while the process runs (a Kubernetes Secret updated by
// cert-manager, a rotated file on a VM): every new handshake uses the files' current
// contents, with no restart.
//
// The files are checked on handshakes, at most once per CheckInterval (a stat of each
// file: modification time, size, identity), so no goroutine or file watcher is needed and a
// Kubernetes Secret's symlink swap is seen like an in-place write. A rotation is rarely
// atomic across three files: while the certificate and key do not match, or a file is half
// written, the last good set keeps serving and the files are tried again at the next check.
package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CheckInterval bounds how often the files are looked at: a rotation is in use at most
// this long after the files are complete.
const CheckInterval = time.Second

// Files names the PEM files: the service's certificate (chain) and private key, and the CA
// bundle that peers' certificates must chain to.
type Files struct {
	Cert, Key, CA string
}

// Reloader holds the current certificate and CA pool and re-reads them when the files
// change.
type Reloader struct {
	files  Files
	logger *slog.Logger
	now    func() time.Time

	mu        sync.Mutex
	current   *material
	checked   time.Time  // last look at the files
	failedSig [3]fileSig // the files' state at the last failed load, so it is logged once
}

// material is one consistent set read from the files.
type material struct {
	sig  [3]fileSig
	cert tls.Certificate
	leaf *x509.Certificate
	pool *x509.CertPool
}

// fileSig tells whether a file changed: a replaced file (new inode) or a rewritten one.
type fileSig struct {
	modTime time.Time
	size    int64
	ino     uint64
}

// New reads the files once; they must be valid for the process to start.
func New(files Files, logger *slog.Logger) (*Reloader, error) {
	if files.Cert == "" || files.Key == "" || files.CA == "" {
		return nil, errors.New("TLS needs a certificate, a key and a CA file")
	}
	r := &Reloader{files: files, logger: logger, now: time.Now}
	m, err := r.load()
	if err != nil {
		return nil, err
	}
	r.current, r.checked = m, r.now()
	return r, nil
}

// Identity is the Subject CommonName of the current certificate: the name this service
// presents to the services it calls.
func (r *Reloader) Identity() string { return r.get().leaf.Subject.CommonName }

// get returns the current material, reloading it first when the files changed since the
// last check (at most once per CheckInterval).
func (r *Reloader) get() *material {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < CheckInterval {
		return r.current
	}
	r.checked = now
	sig, err := r.stat()
	if err != nil {
		r.failed(sig, err)
		return r.current
	}
	if sig == r.current.sig {
		return r.current
	}
	m, err := r.load()
	if err != nil {
		r.failed(sig, err)
		return r.current
	}
	r.current = m
	r.logger.Info("TLS files reloaded", "cert", r.files.Cert, "subject", m.leaf.Subject.CommonName,
		"not_after", m.leaf.NotAfter.UTC().Format(time.RFC3339))
	return m
}

// failed logs a reload failure once per state of the files: a rotation in progress fails
// until its last file is written and should not flood the log.
func (r *Reloader) failed(sig [3]fileSig, err error) {
	if sig == r.failedSig {
		return
	}
	r.failedSig = sig
	r.logger.Warn("TLS files changed but cannot be loaded; serving with the previous ones until they can",
		"cert", r.files.Cert, "error", err)
}

func (r *Reloader) stat() ([3]fileSig, error) {
	var sig [3]fileSig
	for i, path := range []string{r.files.Cert, r.files.Key, r.files.CA} {
		info, err := os.Stat(path)
		if err != nil {
			return sig, fmt.Errorf("stat %s: %w", path, err)
		}
		sig[i] = fileSig{modTime: info.ModTime(), size: info.Size(), ino: inode(info)}
	}
	return sig, nil
}

// load reads the three files; the signature is taken before reading so that a change
// made during the read is seen again at the next check.
func (r *Reloader) load() (*material, error) {
	sig, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s and key %s: %w", r.files.Cert, r.files.Key, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse certificate %s: %w", r.files.Cert, err)
		}
	}
	caPEM, err := os.ReadFile(r.files.CA)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", r.files.CA)
	}
	return &material{sig: sig, cert: cert, leaf: leaf, pool: pool}, nil
}

// ServerConfig is a server's TLS configuration: the current certificate, and peers'
// certificates verified against the current CA bundle. clientAuth is
// tls.RequireAndVerifyClientCert for internal services, tls.VerifyClientCertIfGiven where
// callers may authenticate otherwise (the gateway's producers with API keys). nextProtos
// is the ALPN list the protocol needs ("h2" for gRPC).
func (r *Reloader) ServerConfig(clientAuth tls.ClientAuthType, nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := r.get()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   nextProtos,
				Certificates: []tls.Certificate{m.cert},
				ClientCAs:    m.pool,
				ClientAuth:   clientAuth,
				// A resumed session would skip verifying the client's certificate against
				// the CA bundle of now (one removed from it would still get in); internal
				// connections are long-lived, so full handshakes cost little.
				SessionTicketsDisabled: true,
			}, nil
		},
	}
}

// ClientConfig is a client's TLS configuration for one handshake: it presents the current
// certificate and verifies the server's against the CA bundle current now and the name
// dialled (ServerName; gRPC fills it from the target's host). Take a new one for every
// handshake (the standard library verifies against a fixed RootCAs): gRPC clients get that
// from a TransportCredentials whose ClientHandshake calls ClientConfig.
func (r *Reloader) ClientConfig(nextProtos ...string) *tls.Config {
	m := r.get()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		RootCAs:    m.pool,
		// The certificate current at the server's request, which a rotation between
		// this call and the handshake would otherwise miss.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &r.get().cert, nil
		},
	}
}
