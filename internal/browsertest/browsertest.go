// Package browsertest runs headless Chromium (Debian's chromium package)
// for the project's browser tests, driven with chromedp. Without a browser
// a test is skipped, unless the environment variable CI is set: then a
// missing browser is a failure (CI installs chromium).
package browsertest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path finds the browser: $CHROMIUM, or chromium on the PATH, or "".
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless browser for t, with a fresh profile and extra
// options (TrustCertificate), and returns a chromedp context on a first
// tab, closed when the test ends; timeout bounds the browser's life (a
// watchdog kills it then).
func New(t testing.TB, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("browsertest: no chromium (CI must install Debian's chromium package)")
		}
		t.Skip("browsertest: no chromium on this machine (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, extra...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	watchdog := time.AfterFunc(timeout, func() { cancelC(); cancelA() })
	t.Cleanup(func() { watchdog.Stop(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser (no timeout on this first run)
		t.Fatalf("browsertest: starting %s: %v", path, err)
	}
	return ctx
}

// Tab opens another tab in the browser of ctx.
func Tab(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("browsertest: new tab: %v", err)
	}
	return tab
}

// TrustCertificate makes the browser accept the certificate chains that
// contain cert (a test CA, which the server must then present with its
// leaf): Chromium's --ignore-certificate-errors-spki-list, which it honours
// with a profile of its own (New makes one). The browser's certificate
// checks stay on for every other chain.
func TrustCertificate(cert *x509.Certificate) chromedp.ExecAllocatorOption {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(sum[:]))
}
