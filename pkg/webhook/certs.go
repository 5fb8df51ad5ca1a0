package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// certValidity is how long a certificate authority and its serving
// certificate are valid; they are replaced rotateBefore their end.
const (
	certValidity = 365 * 24 * time.Hour
	rotateBefore = 30 * 24 * time.Hour
)

// keyPair is a certificate authority and the serving certificate it signed.
type keyPair struct {
	caPEM    []byte
	serving  tls.Certificate
	notAfter time.Time
}

// newKeyPair makes a certificate authority and a serving certificate for
// the DNS names, valid from now.
func newKeyPair(now time.Time, names []string) (*keyPair, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(certValidity)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "metallb webhook CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("make the webhook's certificate authority: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("make the webhook's serving certificate: %w", err)
	}
	return &keyPair{
		caPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		serving:  tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key},
		notAfter: notAfter,
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// bundle is the caBundle for the current pair and, during a rotation, the
// previous one: the API server trusts both while it learns the new one.
func bundle(cur, prev *keyPair, now time.Time) []byte {
	b := bytes.Clone(cur.caPEM)
	if prev != nil && now.Before(prev.notAfter) {
		b = append(b, prev.caPEM...)
	}
	return b
}
