// Command kubecheck validates Kubernetes manifests (multi-document YAML on stdin, as `helm template`
// prints them) by decoding every object strictly into the real Go API types: an unknown or misspelt
// field, a duplicate field, a wrong type or an unknown kind is an error. It covers the built-in kinds and
// the Prometheus operator's ServiceMonitor and PrometheusRule. Exit status 1 names every bad object.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

func main() {
	s := runtime.NewScheme()
	must(scheme.AddToScheme(s))
	must(monitoringv1.AddToScheme(s))
	decoder := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()

	reader := utilyaml.NewYAMLReader(bufio.NewReader(os.Stdin))
	checked, failed := 0, 0
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		must(err)
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		checked++
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "INVALID %s: %v\n", describe(doc), err)
			continue
		}
		fmt.Printf("ok %s %s\n", gvk.String(), name(obj))
	}
	fmt.Printf("%d objects checked, %d invalid\n", checked, failed)
	if failed > 0 || checked == 0 {
		os.Exit(1)
	}
}

func name(obj runtime.Object) string {
	if m, ok := obj.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return ""
}

// describe names a document that failed to decode by its first lines (kind, name), for the message.
func describe(doc []byte) string {
	var kind, nm string
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if k, ok := bytes.CutPrefix(line, []byte("kind: ")); ok && kind == "" {
			kind = string(k)
		}
		if n, ok := bytes.CutPrefix(line, []byte("  name: ")); ok && nm == "" {
			nm = string(n)
		}
	}
	return fmt.Sprintf("%s %s", kind, nm)
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecheck:", err)
		os.Exit(2)
	}
}
