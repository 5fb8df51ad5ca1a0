package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with the metallb-system/config ConfigMap",
	}
	cmd.AddCommand(newConfigValidateCmd(g), newConfigConvertCmd(g))
	return cmd
}

// configInput is where a config command reads its configuration: a file,
// standard input, or the live ConfigMap.
type configInput struct {
	file        string
	fromCluster bool
	kubeconfig  string
	context     string
	namespace   string
	name        string
}

func (in *configInput) flags(cmd *cobra.Command, fromCluster string) {
	f := cmd.Flags()
	f.StringVarP(&in.file, "file", "f", "", "config file or manifests (- for standard input)")
	f.BoolVar(&in.fromCluster, "from-cluster", false, fromCluster)
	f.StringVar(&in.kubeconfig, "kubeconfig", "", kubeconfigUsage)
	f.StringVar(&in.context, "context", "", contextUsage)
	f.StringVarP(&in.namespace, "namespace", "n", k8s.DefaultNamespace, "namespace of the ConfigMap")
	f.StringVar(&in.name, "configmap", k8s.DefaultConfigMap, "name of the ConfigMap")
}

// fileArg takes FILE given as an argument, like -f FILE.
func (in *configInput) fileArg(args []string) error {
	if len(args) == 1 {
		if in.file != "" {
			return fmt.Errorf("a file given twice (%s and -f %s): give one", args[0], in.file)
		}
		in.file = args[0]
	}
	return nil
}

// read returns the configuration text and where it came from; what is
// the verb for the error when nothing is given on a terminal.
func (in *configInput) read(ctx context.Context, g *globals, what string) (data []byte, source string, err error) {
	switch {
	case in.file == "-" || (in.file == "" && !in.fromCluster):
		if _, tty := isTerminal(g.in); tty && in.file == "" {
			return nil, "", fmt.Errorf("no configuration to %s: give a file (metallb config %s config.yaml), pipe one in, or pass --from-cluster", what, what)
		}
		source = "standard input"
		data, err = io.ReadAll(g.in)
	case in.file != "":
		source = in.file
		data, err = os.ReadFile(in.file)
	default:
		source = "ConfigMap " + in.namespace + "/" + in.name
		client, cerr := in.client()
		if cerr != nil {
			return nil, "", cerr
		}
		var s string
		s, err = k8s.ReadConfigMap(ctx, client, in.namespace, in.name)
		data = []byte(s)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", source, err)
	}
	return data, source, nil
}

func (in *configInput) client() (kubernetes.Interface, error) {
	client, _, err := in.clients()
	return client, err
}

// clients are client and a dynamic client, for the metallb.io resources.
func (in *configInput) clients() (kubernetes.Interface, dynamic.Interface, error) {
	return clients(k8s.Kubeconfig{Path: in.kubeconfig, Context: in.context}, "metallb-config")
}

type validateOptions struct {
	configInput
	allow  bool
	output string
}

func newConfigValidateCmd(g *globals) *cobra.Command {
	o := &validateOptions{}
	cmd := &cobra.Command{
		Use:   "validate [FILE|-f FILE|-] [--from-cluster]",
		Short: "Check a configuration and summarise its pools",
		Long: `Check a configuration (MetalLB v0.12 format, or metallb.io resources) and print "ok" with one line per pool,
or every error with its line (on standard error). Exit code 0 when valid, 1 otherwise.

A file may hold several YAML documents (kubectl's "---"): each bare config and each
ConfigMap with a config key is checked; MetalLB v0.13+ resources (metallb.io
IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, Community, BFDProfile, as
in MetalLB's docs) are checked together as one configuration, with the file's v0.12
config when it holds one; other objects are listed as skipped.

  metallb config validate config.yaml         a config file, or manifests holding the ConfigMap
  metallb config validate -f config.yaml      the same
  metallb config validate < config.yaml       standard input
  metallb config validate --from-cluster      the live ConfigMap
  metallb config validate --from-cluster -f new.yaml
                                              a new config or resources, applied in thought
                                              to the cluster's (objects of the same kind and
                                              name replaced, the others kept) and judged as
                                              the controller would: refused (exit 1) when
                                              invalid, or when it would take or change a
                                              Service's address`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.fileArg(args); err != nil {
				return err
			}
			return o.run(cmd, g)
		},
	}
	o.flags(cmd, "read the live ConfigMap (or, with a file, compare against the cluster)")
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "", "json: one object on stdout for scripts (default: text)")
	f.BoolVar(&o.allow, "allow-address-changes", false, "judge as if the ConfigMap had the "+k8s.AllowChangesAnnotation+" annotation")
	return cmd
}

func (o *validateOptions) run(cmd *cobra.Command, g *globals) error {
	ctx := cmd.Context()
	if o.output != "" && o.output != "json" {
		return fmt.Errorf("-o %q: want json (or nothing, for text)", o.output)
	}
	data, source, err := o.read(ctx, g, "validate")
	if err != nil {
		return err
	}
	if o.output == "json" {
		return o.checkJSON(g, source, data)
	}
	if _, err := o.check(g, source, data); err != nil {
		return err
	}
	if o.fromCluster && o.file != "" {
		client, dyn, err := o.clients()
		if err != nil {
			return err
		}
		cfg, err := o.applied(ctx, g, client, dyn, data)
		if err != nil {
			return err
		}
		affected, err := k8s.AddressImpact(ctx, client, o.namespace, o.name, "", cfg)
		if err != nil {
			return err
		}
		if len(affected) > 0 && !o.allow {
			fmt.Fprintf(g.err, "refused by the controller: %v\n", &k8s.AddressChangeError{Affected: affected, Namespace: o.namespace, Name: o.name})
			return exitError{code: 1}
		}
		for _, a := range affected {
			fmt.Fprintf(g.out, "  renumbered (allowed): %s\n", a)
		}
	}
	return nil
}

// applied returns the configuration the cluster would hold once the file
// is applied (kubectl apply -f): the file's v0.12 config in place of the
// ConfigMap's (or the ConfigMap's, when the file has none), and the
// cluster's metallb.io resources with the file's replacing those of the
// same kind and name. It says so when that differs from the file alone,
// and refuses a file that makes that configuration invalid.
func (o *validateOptions) applied(ctx context.Context, g *globals, client kubernetes.Interface, dyn dynamic.Interface, data []byte) (*config.Config, error) {
	docs, err := config.SplitDocuments(data)
	if err != nil {
		return nil, err
	}
	var text *string
	var edits []config.Document
	for _, d := range docs {
		switch {
		case d.MetalLBResource():
			edits = append(edits, d)
		case d.Config != nil:
			t := string(d.Config)
			text = &t
		}
	}
	var kept []string
	if text == nil {
		t, err := k8s.ConfigText(ctx, client, o.namespace, o.name)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(t) != "" {
			kept = append(kept, "the ConfigMap's config")
		}
		text = &t
	}
	inCluster, err := k8s.ResourceDocuments(ctx, client.Discovery(), dyn, o.namespace)
	if err != nil {
		return nil, err
	}
	resources, err := config.ApplyResources(inCluster, edits)
	if err != nil {
		return nil, err
	}
	if n := len(resources) - len(edits); n > 0 {
		kept = append(kept, fmt.Sprintf("%d metallb.io resource(s)", n))
	}
	combined, err := config.Combine(*text, resources)
	if err == nil {
		var cfg *config.Config
		if cfg, err = config.Parse([]byte(combined)); err == nil {
			if len(kept) > 0 {
				fmt.Fprintf(g.out, "applied to namespace %s, which keeps %s: ok\n", o.namespace, strings.Join(kept, " and "))
			}
			for _, w := range cfg.Warnings {
				fmt.Fprintf(g.out, "  warning: %s\n", w)
			}
			return cfg, nil
		}
	}
	where := "applied to namespace " + o.namespace
	if len(kept) > 0 {
		where += " (which keeps " + strings.Join(kept, " and ") + ")"
	}
	fmt.Fprintf(g.err, "%s, the file makes the configuration invalid:\n", where)
	var es config.Errors
	if errors.As(config.WithoutResourceLines(err), &es) {
		for _, e := range es {
			fmt.Fprintf(g.err, "  %s\n", e)
		}
	} else {
		fmt.Fprintf(g.err, "  %v\n", err)
	}
	return nil, exitError{code: 1}
}

// validation is what validate found in a file, one verdict per document;
// -o json prints it as it is.
type validation struct {
	Source    string              `json:"source"`
	Valid     bool                `json:"valid"`
	Documents []validatedDocument `json:"documents"`
}

type validatedDocument struct {
	Line     int            `json:"line"`
	What     string         `json:"what"`
	Checked  bool           `json:"checked"` // false: not a metallb configuration, skipped
	Valid    bool           `json:"valid"`
	Errors   []config.Error `json:"errors,omitempty"`
	Pools    []string       `json:"pools,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	cfg      *config.Config // when valid
}

// judge validates every configuration in data (one or several YAML
// documents).
func (o *validateOptions) judge(source string, data []byte) (validation, error) {
	v := validation{Source: source}
	docs, err := config.SplitDocuments(data)
	if err != nil {
		v.Documents = []validatedDocument{{Line: 1, What: "file", Checked: true, Errors: []config.Error{{Msg: err.Error()}}}}
		return v, nil
	}
	if len(docs) == 0 { // an empty file: the empty config
		docs = []config.Document{{Line: 1, Config: []byte{}}}
	}
	v.Valid = true
	found := 0
	// The metallb.io resources of a file make one configuration, with the
	// v0.12 config beside them when the file holds exactly one.
	var resources []config.Document
	var names []string
	configs := 0
	for _, d := range docs {
		switch {
		case d.MetalLBResource():
			resources = append(resources, d)
			names = append(names, d.What())
		case d.Config != nil:
			configs++
		}
	}
	resourcesDone := false
	for _, d := range docs {
		r := validatedDocument{Line: d.Line, What: d.What()}
		var cfg *config.Config
		var err error
		switch {
		case d.MetalLBResource() && resourcesDone:
			continue
		case d.MetalLBResource():
			resourcesDone = true
			r.What = "metallb.io resources (MetalLB v0.13+ format): " + strings.Join(names, ", ")
			merge := resources
			if configs == 1 {
				for _, c := range docs {
					if c.Config != nil && !c.MetalLBResource() {
						merge = append([]config.Document{c}, resources...)
						r.What += ", with the v0.12 config of " + c.What()
					}
				}
			}
			found++
			r.Checked = true
			cfg, err = config.ParseDocuments(merge)
		case d.Config != nil && configs == 1 && len(resources) > 0:
			continue // checked with the resources
		case d.Config != nil:
			found++
			r.Checked = true
			cfg, err = config.Parse(d.Config)
			err = config.ShiftLines(err, d.Offset)
		}
		var es config.Errors
		switch {
		case !r.Checked:
		case errors.As(err, &es):
			r.Errors = es
		case err != nil:
			return v, err
		default:
			r.Valid, r.cfg, r.Warnings = true, cfg, cfg.Warnings
			for _, p := range cfg.Pools {
				r.Pools = append(r.Pools, p.Summary())
			}
		}
		if r.Checked && !r.Valid {
			v.Valid = false
		}
		v.Documents = append(v.Documents, r)
	}
	if found == 0 {
		v.Valid = false
	}
	return v, nil
}

// checkJSON is check for scripts: the same verdicts as one JSON object on
// stdout, exit 1 when anything is invalid. (With --from-cluster and a
// file, the controller's verdict is text only.)
func (o *validateOptions) checkJSON(g *globals, source string, data []byte) error {
	v, err := o.judge(source, data)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(g.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	if !v.Valid {
		return exitError{code: 1}
	}
	return nil
}

// check validates every configuration in data and returns the last one;
// what is wrong goes to standard error, the summary of what is right to
// standard output.
func (o *validateOptions) check(g *globals, source string, data []byte) (*config.Config, error) {
	v, err := o.judge(source, data)
	if err != nil {
		return nil, err
	}
	var last *config.Config
	found := 0
	multi := len(v.Documents) > 1
	for _, d := range v.Documents {
		where := source
		switch {
		case multi:
			where = fmt.Sprintf("%s, line %d (%s)", source, d.Line, d.What)
		case d.Checked && strings.HasPrefix(d.What, "metallb.io"):
			where = fmt.Sprintf("%s (%s)", source, d.What) // the format read
		}
		switch {
		case !d.Checked && multi:
			fmt.Fprintf(g.out, "%s: not a metallb configuration, skipped\n", where)
		case !d.Checked:
			fmt.Fprintf(g.err, "%s: %s holds no metallb configuration (a v0.12 config, a ConfigMap with a config key, or metallb.io resources)\n", source, d.What)
			return nil, exitError{code: 1}
		case d.cfg == nil && len(d.Errors) == 1 && d.Errors[0].Line == 0:
			fmt.Fprintf(g.err, "%s: %s\n", where, d.Errors[0].Msg) // about the document as a whole
		case d.cfg == nil:
			fmt.Fprintf(g.err, "%s: %d error(s):\n", where, len(d.Errors))
			for _, e := range d.Errors {
				fmt.Fprintf(g.err, "  %s\n", e)
			}
		default:
			found++
			last = d.cfg
			if where != source {
				fmt.Fprintf(g.out, "%s: ", where)
			}
			fmt.Fprintln(g.out, "ok")
			for _, p := range d.Pools {
				fmt.Fprintf(g.out, "  %s\n", p)
			}
			if len(d.Pools) == 0 {
				fmt.Fprintln(g.out, "  no address pools: LoadBalancer Services will stay <pending>")
			}
			if !o.fromCluster || o.file == "" { // else: those of the cluster's configuration with the file applied
				for _, w := range d.Warnings {
					fmt.Fprintf(g.out, "  warning: %s\n", w)
				}
			}
		}
	}
	switch {
	case v.Valid && found > 1 && o.fromCluster:
		fmt.Fprintf(g.err, "%s: %d configurations: --from-cluster judges one; give one file per configuration\n", source, found)
		return nil, exitError{code: 1}
	case v.Valid:
		return last, nil
	case !slices.ContainsFunc(v.Documents, func(d validatedDocument) bool { return d.Checked }):
		fmt.Fprintf(g.err, "%s: no metallb configuration in it (a v0.12 config, a ConfigMap with a config key, or metallb.io resources)\n", source)
	}
	return nil, exitError{code: 1}
}
