// Command kubecheck validates Kubernetes manifests (multi-document YAML on stdin, as `helm template`
// prints them) the way the API server does on create: each object is decoded strictly (unknown,
// misspelt or duplicate fields, wrong types and unknown kinds are errors), defaulted, converted to the
// internal types and passed to the API server's own validation functions from k8s.io/kubernetes
// (ValidateDeployment, ValidateHorizontalPodAutoscaler, …), with the options its registry strategies use.
// The Prometheus operator's ServiceMonitor and PrometheusRule are decoded strictly into its Go types.
// Exit status 1 names every bad object and field.
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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	"k8s.io/kubernetes/pkg/apis/apps"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	appsvalidation "k8s.io/kubernetes/pkg/apis/apps/validation"
	"k8s.io/kubernetes/pkg/apis/autoscaling"
	_ "k8s.io/kubernetes/pkg/apis/autoscaling/install"
	autoscalingvalidation "k8s.io/kubernetes/pkg/apis/autoscaling/validation"
	"k8s.io/kubernetes/pkg/apis/core"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/apis/networking"
	_ "k8s.io/kubernetes/pkg/apis/networking/install"
	networkingvalidation "k8s.io/kubernetes/pkg/apis/networking/validation"
	"k8s.io/kubernetes/pkg/apis/policy"
	_ "k8s.io/kubernetes/pkg/apis/policy/install"
	policyvalidation "k8s.io/kubernetes/pkg/apis/policy/validation"
)

// validate runs the API server's create validation for an internal object (as its registry strategy does).
func validate(obj runtime.Object) (field.ErrorList, bool) {
	switch o := obj.(type) {
	case *apps.Deployment:
		return appsvalidation.ValidateDeployment(o, podutil.GetValidationOptionsFromPodTemplate(&o.Spec.Template, nil)), true
	case *autoscaling.HorizontalPodAutoscaler:
		return autoscalingvalidation.ValidateHorizontalPodAutoscaler(o), true
	case *policy.PodDisruptionBudget:
		return policyvalidation.ValidatePodDisruptionBudget(o, policyvalidation.PodDisruptionBudgetValidationOptions{}), true
	case *networking.NetworkPolicy:
		return networkingvalidation.ValidateNetworkPolicy(o, networkingvalidation.ValidationOptionsForNetworking(o, nil)), true
	case *core.ConfigMap:
		return corevalidation.ValidateConfigMap(o), true
	case *core.Secret:
		return corevalidation.ValidateSecret(o), true
	case *core.Service:
		return corevalidation.ValidateService(o), true
	case *core.ServiceAccount:
		return corevalidation.ValidateServiceAccount(o), true
	}
	return nil, false
}

func main() {
	builtin := serializer.NewCodecFactory(legacyscheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	crds := runtime.NewScheme()
	must(monitoringv1.AddToScheme(crds))
	crdDecoder := serializer.NewCodecFactory(crds, serializer.EnableStrict).UniversalDeserializer()

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
		if problem := check(builtin, crdDecoder, doc); problem != "" {
			failed++
			fmt.Fprintf(os.Stderr, "INVALID %s: %s\n", describe(doc), problem)
		}
	}
	fmt.Printf("%d objects checked, %d invalid\n", checked, failed)
	if failed > 0 || checked == 0 {
		os.Exit(1)
	}
}

// check returns what is wrong with one document, or "" when the API server would accept it.
func check(builtin, crds runtime.Decoder, doc []byte) string {
	var meta runtime.TypeMeta
	_ = utilyaml.Unmarshal(doc, &meta)
	gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
	if gvk.Group == monitoringv1.SchemeGroupVersion.Group {
		obj, _, err := crds.Decode(doc, nil, nil)
		if err != nil {
			return err.Error()
		}
		fmt.Printf("ok %s %s (strict decoding)\n", gvk, name(obj))
		return ""
	}
	obj, _, err := builtin.Decode(doc, nil, nil)
	if err != nil {
		return err.Error()
	}
	// What the API server does before validating: apply the defaults, convert to the internal version.
	legacyscheme.Scheme.Default(obj)
	internal, err := legacyscheme.Scheme.ConvertToVersion(obj, schema.GroupVersion{Group: gvk.Group, Version: runtime.APIVersionInternal})
	if err != nil {
		return "conversion: " + err.Error()
	}
	errs, known := validate(internal)
	if !known {
		return fmt.Sprintf("kubecheck has no validation for %s: add it to validate()", gvk)
	}
	if len(errs) > 0 {
		return errs.ToAggregate().Error()
	}
	fmt.Printf("ok %s %s (validated)\n", gvk, name(obj))
	return ""
}

func name(obj runtime.Object) string {
	if m, ok := obj.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return ""
}

// describe names a document by its first lines (kind, name), for the message.
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
