// Package manifests holds hw's packaged add-ons as manifest templates,
// embedded in the binary. On every start the server renders them with the
// cluster's settings into its auto-deploy folder (see pkg/addons).
package manifests

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

//go:embed *.yaml
var files embed.FS

// Settings fill in the templates.
type Settings struct {
	ClusterDNS    string
	ClusterDomain string
	// MetricsPort is where every server serves metrics.k8s.io.
	MetricsPort int
	// ServerCABase64 verifies the metrics API's serving certificate.
	ServerCABase64 string
}

// Render returns the add-on's manifest (file NAME.yaml) filled in with s.
func Render(name string, s Settings) ([]byte, error) {
	text, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no packaged manifest for add-on %q", name)
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, s); err != nil {
		return nil, fmt.Errorf("rendering add-on %s: %w", name, err)
	}
	return out.Bytes(), nil
}

// Has reports whether the add-on has a packaged manifest.
func Has(name string) bool {
	_, err := files.Open(name + ".yaml")
	return err == nil
}
