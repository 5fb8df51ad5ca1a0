package config

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Document is one YAML document of a file, as `metallb config validate`
// sees it: a bare v0.12 config, a ConfigMap holding one, MetalLB's v0.13+
// resources (metallb.io), or anything else.
type Document struct {
	Line       int // where it starts in the file (1-based)
	APIVersion string
	Kind       string
	Name       string
	// Config is the v0.12 config the document holds (a bare config, or a
	// ConfigMap's data.config), nil if none; Offset is the number of lines
	// of the file before Config's first line, for error lines.
	Config []byte
	Offset int
	// Raw is the document's text as in the file.
	Raw []byte

	node *yaml.Node // a metallb.io resource's root, lines as in the file
}

// What names the document in messages: Kind/name, or "config".
func (d Document) What() string {
	switch {
	case d.Kind == "" && d.APIVersion == "":
		return "config"
	case d.Name == "":
		return d.Kind
	}
	return d.Kind + "/" + d.Name
}

// MetalLBResource reports whether the document is one of MetalLB's v0.13+
// resources (group metallb.io).
func (d Document) MetalLBResource() bool {
	return strings.HasPrefix(d.APIVersion, "metallb.io/")
}

// SplitDocuments splits a multi-document YAML file at its "---" lines and
// reads what each document is; empty documents are left out. A document
// that is not YAML is returned with the parse error.
func SplitDocuments(data []byte) ([]Document, error) {
	var out []Document
	lines := bytes.SplitAfter(data, []byte("\n"))
	start := 0
	flush := func(end int) error {
		chunk := bytes.Join(lines[start:end], nil)
		defer func() { start = end + 1 }()
		d, err := readDocument(chunk, start)
		if err != nil || d == nil {
			return err
		}
		out = append(out, *d)
		return nil
	}
	for i, l := range lines {
		if s := strings.TrimRight(string(l), "\r\n"); s == "---" || strings.HasPrefix(s, "--- ") || s == "..." {
			if err := flush(i); err != nil {
				return out, err
			}
		}
	}
	if err := flush(len(lines)); err != nil {
		return out, err
	}
	return out, nil
}

// readDocument reads one document that starts after offset lines; nil
// when it is empty (or only comments).
func readDocument(chunk []byte, offset int) (*Document, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(chunk, &doc); err != nil {
		return nil, fmt.Errorf("line %d: the document starting here is not YAML: %w", offset+1, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	d := &Document{Line: offset + root.Line}
	if root.Kind != yaml.MappingNode {
		// Not a mapping: not a config either; Parse says why.
		d.Config, d.Offset = chunk, offset
		return d, nil
	}
	line := d.Line
	*d = describeRoot(root)
	d.Line = line
	if d.MetalLBResource() {
		// Parsed again with the lines before it, so that its nodes carry
		// the file's line numbers.
		var abs yaml.Node
		if yaml.Unmarshal(append(bytes.Repeat([]byte("\n"), offset), chunk...), &abs) == nil && len(abs.Content) > 0 {
			d.node = abs.Content[0]
		}
	}
	switch {
	case d.APIVersion == "" && d.Kind == "":
		d.Config, d.Offset = chunk, offset
	case d.Kind == "ConfigMap":
		if cfg, off, ok := FromManifest(chunk); ok {
			d.Config, d.Offset = cfg, offset+off
		}
	}
	d.Raw = chunk
	return d, nil
}

// ApplyResources returns the metallb.io resources base holds once the
// resources among edits are applied as kubectl apply -f would: one of the
// same kind and name is replaced, a new one added, the others stay.
// Documents of edits that are not metallb.io resources are left out.
func ApplyResources(base [][]byte, edits []Document) ([][]byte, error) {
	type key struct{ kind, name string }
	out := slices.Clone(base)
	at := map[key]int{}
	for i, b := range base {
		docs, err := SplitDocuments(b)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			at[key{d.Kind, d.Name}] = i
		}
	}
	for _, e := range edits {
		if !e.MetalLBResource() {
			continue
		}
		k := key{e.Kind, e.Name}
		if i, ok := at[k]; ok {
			out[i] = e.Raw
			continue
		}
		at[k] = len(out)
		out = append(out, e.Raw)
	}
	return out, nil
}

// describeRoot reads what a document's root mapping is.
func describeRoot(root *yaml.Node) Document {
	scalar := func(n *yaml.Node) string {
		if n == nil || n.Kind != yaml.ScalarNode {
			return ""
		}
		return n.Value
	}
	return Document{Line: root.Line, APIVersion: scalar(get(root, "apiVersion")), Kind: scalar(get(root, "kind")),
		Name: scalar(get(get(root, "metadata"), "name")), node: root}
}
