// Package manifests holds the Kubernetes manifests the installer applies, as
// templates embedded in the binary, and renders them.
//
// The YAML files next to this one are the sources: namespace.yaml,
// crds.yaml (the metallb.io CRDs), rbac.yaml, config.yaml (the ConfigMap),
// controller.yaml (Deployment), webhook.yaml (its validating webhook),
// speaker.yaml (DaemonSet), guard.yaml and monitoring.yaml. The memberlist Secret is not a template: the
// installer creates it once with a random key and never replaces it.
package manifests

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed *.yaml *.tmpl
var files embed.FS

// Monitoring holds the alert rules (Prometheus rule file format) and the
// Grafana dashboard, included verbatim (they hold templates of their own).
//
//go:embed monitoring/rules.yaml monitoring/dashboard.json
var Monitoring embed.FS

// Order is the order objects are applied in (and rendered by Render).
var Order = []string{"namespace.yaml", "crds.yaml", "rbac.yaml", "config.yaml", "controller.yaml", "webhook.yaml", "speaker.yaml", "guard.yaml", "monitoring.yaml"}

// Values fill the templates.
type Values struct {
	Namespace  string
	Image      string
	PullPolicy string // IfNotPresent for an imported image, Always for :latest
	LogLevel   string
	Config     string // the ConfigMap's config key, MetalLB v0.12 YAML
	// AllowAddressChanges annotates the ConfigMap so that the controller
	// accepts a config that renumbers Services.
	AllowAddressChanges bool
	// WithMonitoring adds PodMonitors, a PrometheusRule and the Grafana
	// dashboard (when the Prometheus Operator's CRDs exist).
	WithMonitoring bool
	// ServiceBGPStatus runs the speakers with --service-bgp-status.
	ServiceBGPStatus bool
	// TrafficStats adds the counting container (traffic-counter, the only
	// one with CAP_NET_ADMIN) to the speaker pods.
	TrafficStats bool
	PartOf       string // value of app.kubernetes.io/part-of, which disable selects on
	// Addon is how MicroK8s names this addon ("lab/metallb"), for the
	// guard's message.
	Addon     string
	ManagedBy string
}

// DefaultAddon is how the docs name this addon beside MicroK8s's core one:
// README adds the repository as "lab".
const DefaultAddon = "lab/metallb"

// PartOf is the app.kubernetes.io/part-of label on every object the
// installer creates.
const PartOf = "microk8s-metallb"

var tmpl *template.Template

func init() {
	tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"indent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
			for i, l := range lines {
				if l != "" {
					lines[i] = pad + l
				}
			}
			return strings.Join(lines, "\n")
		},
		"monitoring": func(name string) (string, error) {
			b, err := Monitoring.ReadFile("monitoring/" + name)
			return string(b), err
		},
		// include renders a template to a string, to indent it.
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := tmpl.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		},
	}).Option("missingkey=error").ParseFS(files, "*.yaml", "*.tmpl"))
}

// Render returns every manifest as one multi-document YAML stream.
func Render(v Values) ([]byte, error) {
	if v.Namespace == "" || v.Image == "" || v.Config == "" {
		return nil, fmt.Errorf("render manifests: namespace, image and config are required")
	}
	if v.PartOf == "" {
		v.PartOf = PartOf
	}
	if v.ManagedBy == "" {
		v.ManagedBy = "metallb-installer"
	}
	if v.Addon == "" {
		v.Addon = DefaultAddon
	}
	if v.LogLevel == "" {
		v.LogLevel = "info"
	}
	if v.PullPolicy == "" {
		v.PullPolicy = "IfNotPresent"
	}
	var buf bytes.Buffer
	for i, name := range Order {
		if name == "monitoring.yaml" && !v.WithMonitoring {
			continue
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		if err := tmpl.ExecuteTemplate(&buf, name, v); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
	}
	return buf.Bytes(), nil
}
