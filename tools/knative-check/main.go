// Command knative-check validates the data service's Knative manifests offline, the way the cluster would:
// it renders each kustomize folder (or reads each YAML file), strictly decodes every serving.knative.dev/v1
// Service, runs Knative Serving's own SetDefaults and Validate against the cluster's config-defaults,
// config-features and config-autoscaler ConfigMaps, and then applies the project's rules (rules.go).
//
//	knative-check [-cluster PATH] [-list] PATH...
//
// Exit status: 0 when no input has a finding, 1 when any has, 2 on a usage or read/render error.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// document is one YAML document of the rendered input, with the identity every message names.
type document struct {
	raw        []byte
	apiVersion string
	kind       string
	name       string
	namespace  string
}

func (d document) id() string { return d.kind + "/" + d.name }

// finding is one problem: which object, which field, what is wrong, and which rule says so.
type finding struct {
	object string
	field  string
	msg    string
	rule   string // "knative" for Knative's own validation, "decode" for strict decoding, else a project rule
}

func (f finding) String() string {
	field := f.field
	if field == "" {
		field = "(object)"
	}
	return fmt.Sprintf("%s: %s: %s [%s]", f.object, field, f.msg, f.rule)
}

func main() {
	clusterPath := flag.String("cluster", "", "kustomize folder or YAML file with the knative-serving config-* ConfigMaps the services are validated against (default: Knative's built-in defaults)")
	list := flag.Bool("list", false, "print every rendered resource of each input")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: knative-check [-cluster PATH] [-list] PATH...\n\nEach PATH is a kustomize folder (rendered) or a YAML file.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	var cluster []document
	var clusterFindings []finding
	if *clusterPath != "" {
		docs, err := load(*clusterPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *clusterPath, err)
			os.Exit(2)
		}
		cluster = docs
		_, clusterFindings = clusterConfig(docs)
		for _, path := range flag.Args() {
			if samePath(path, *clusterPath) {
				clusterFindings = nil // reported with that input
			}
		}
		if len(clusterFindings) > 0 {
			printFindings(*clusterPath, clusterFindings)
		}
	}

	status := 0
	if len(clusterFindings) > 0 {
		status = 1
	}
	for _, path := range flag.Args() {
		docs, err := load(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			status = 2
			continue
		}
		findings, services := check(docs, cluster, samePath(path, *clusterPath))
		if *list {
			for _, d := range docs {
				ns := d.namespace
				if ns == "" {
					ns = "-"
				}
				fmt.Printf("%s: %s %s (namespace %s)\n", path, d.apiVersion, d.id(), ns)
			}
		}
		if len(findings) > 0 {
			printFindings(path, findings)
			if status == 0 {
				status = 1
			}
			continue
		}
		names := ""
		if len(services) > 0 {
			names = " (" + strings.Join(services, ", ") + ")"
		}
		fmt.Printf("ok %s: %d resources, %d Knative Services%s\n", path, len(docs), len(services), names)
	}
	os.Exit(status)
}

func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	return errA == nil && errB == nil && absA == absB
}

func printFindings(path string, findings []finding) {
	sort.SliceStable(findings, func(i, j int) bool { return findings[i].object < findings[j].object })
	for _, f := range findings {
		fmt.Printf("%s: %s\n", path, f)
	}
	fmt.Printf("FAIL %s: %d finding(s)\n", path, len(findings))
}

// load renders a kustomize folder, or reads a YAML file (or "-" for stdin), into its documents.
func load(path string) ([]document, error) {
	var stream []byte
	if path == "-" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, err
		}
		stream = data
	} else {
		info, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if info.IsDir() {
			stream, err = render(path)
		} else {
			stream, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, err
		}
	}
	return split(stream)
}

// render runs kustomize in-process (the same library kubectl apply -k embeds), with its default options:
// files may only be loaded from inside the kustomization root, and no plugins or remote execution.
func render(dir string) ([]byte, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build failed: %w", err)
	}
	return resources.AsYaml()
}

func split(stream []byte) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs []document
	for index := 0; ; index++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", index, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("document %d is not valid YAML: %w", index, err)
		}
		if head.APIVersion == "" || head.Kind == "" {
			return nil, fmt.Errorf("document %d has no apiVersion or kind", index)
		}
		docs = append(docs, document{
			raw:        raw,
			apiVersion: head.APIVersion,
			kind:       head.Kind,
			name:       head.Metadata.Name,
			namespace:  head.Metadata.Namespace,
		})
	}
}

func stripComments(raw []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 && trimmed[0] != '#' {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
