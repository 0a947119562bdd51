// Command meshcheck checks proxy configuration with the upstream projects' own definitions.
//
//	meshcheck envoy FILE...  an Envoy bootstrap (YAML or JSON) is decoded with protojson into
//	                         envoy.config.bootstrap.v3.Bootstrap from go-control-plane (unknown fields and
//	                         unknown @types are errors), every typed_config Any is unpacked, and each
//	                         message is checked with its generated ValidateAll() (the protoc-gen-validate
//	                         rules Envoy applies on load). It also checks what those rules cannot see: every
//	                         cluster a route or a gRPC/HTTP service names is defined in static_resources.
//	meshcheck istio FILE...  every document's spec is decoded strictly into istio.io/api's type for its
//	                         kind (AuthorizationPolicy, …; an IstioOperator's spec.meshConfig into MeshConfig).
//
// Exit status 1 names every problem, one per line.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	// The extension types the deploy/ examples put in typed_config: imported so protojson resolves them.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	telemetryv1 "istio.io/api/telemetry/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 3 || (os.Args[1] != "envoy" && os.Args[1] != "istio") {
		fmt.Fprintln(os.Stderr, "usage: meshcheck envoy|istio FILE...")
		os.Exit(2)
	}
	failed := false
	for _, file := range os.Args[2:] {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var problems []string
		if os.Args[1] == "envoy" {
			problems = checkEnvoy(data)
		} else {
			problems = checkIstio(data)
		}
		for _, p := range problems {
			fmt.Printf("%s: %s\n", file, p)
		}
		if len(problems) > 0 {
			failed = true
		} else {
			fmt.Printf("%s: ok\n", file)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func checkEnvoy(data []byte) []string {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return []string{"yaml: " + err.Error()}
	}
	var bootstrap bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &bootstrap); err != nil {
		return []string{"decode: " + err.Error()}
	}
	var problems []string
	refs := map[string][]string{}
	walk(bootstrap.ProtoReflect(), "Bootstrap", &problems, refs)
	defined := map[string]bool{}
	for _, c := range bootstrap.GetStaticResources().GetClusters() {
		defined[c.GetName()] = true
	}
	// With CDS the clusters come from a management server and cannot be checked here.
	if bootstrap.GetDynamicResources().GetCdsConfig() == nil {
		for name, where := range refs {
			if !defined[name] {
				problems = append(problems, fmt.Sprintf("%s: cluster %q is not defined in static_resources.clusters", where[0], name))
			}
		}
	}
	return problems
}

// Messages whose string field names a cluster.
var clusterRefs = map[protoreflect.FullName]protoreflect.Name{
	"envoy.config.route.v3.RouteAction":                   "cluster",
	"envoy.config.core.v3.GrpcService.EnvoyGrpc":          "cluster_name",
	"envoy.config.core.v3.HttpUri":                        "cluster",
	"envoy.config.route.v3.WeightedCluster.ClusterWeight": "name",
}

// walk validates m with its generated ValidateAll (which stops at an Any), then every message below it,
// unpacking each Any so the typed_config payloads are validated too; it records cluster references.
func walk(m protoreflect.Message, path string, problems *[]string, refs map[string][]string) {
	if v, ok := m.Interface().(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			// A parent's ValidateAll also reports its children's errors: report each once, at its deepest.
			if !childOnly(err) {
				*problems = append(*problems, fmt.Sprintf("%s <%s>: %v", path, m.Descriptor().FullName(), ownErrors(err)))
			}
		}
	}
	if f, ok := clusterRefs[m.Descriptor().FullName()]; ok {
		if fd := m.Descriptor().Fields().ByName(f); fd != nil && m.Has(fd) {
			name := m.Get(fd).String()
			refs[name] = append(refs[name], path)
		}
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: %v", path, err))
			return
		}
		walk(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">", problems, refs)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walk(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", name, i), problems, refs)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walk(mv.Message(), fmt.Sprintf("%s[%s]", name, k.String()), problems, refs)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walk(v.Message(), name, problems, refs)
		}
		return true
	})
}

// The generated validation errors: a multi-error of field errors, each of which may wrap a child's error.
type fieldError interface {
	Field() string
	Reason() string
	Cause() error
}

func splitErrors(err error) []error {
	if multi, ok := err.(interface{ AllErrors() []error }); ok {
		return multi.AllErrors()
	}
	return []error{err}
}

// isChild tells an error that only wraps a nested message's failure ("embedded message failed validation").
func isChild(err error) bool {
	var fe fieldError
	if errors.As(err, &fe) {
		return fe.Cause() != nil && strings.Contains(fe.Reason(), "embedded message failed validation")
	}
	return false
}

func childOnly(err error) bool {
	for _, e := range splitErrors(err) {
		if !isChild(e) {
			return false
		}
	}
	return true
}

func ownErrors(err error) string {
	var own []string
	for _, e := range splitErrors(err) {
		if !isChild(e) {
			own = append(own, e.Error())
		}
	}
	return strings.Join(own, "; ")
}

// Istio kinds whose spec is one istio.io/api message.
var istioSpecs = map[string]func() proto.Message{
	"security.istio.io/AuthorizationPolicy":   func() proto.Message { return &securityv1.AuthorizationPolicy{} },
	"security.istio.io/PeerAuthentication":    func() proto.Message { return &securityv1.PeerAuthentication{} },
	"security.istio.io/RequestAuthentication": func() proto.Message { return &securityv1.RequestAuthentication{} },
	"networking.istio.io/VirtualService":      func() proto.Message { return &networkingv1.VirtualService{} },
	"networking.istio.io/DestinationRule":     func() proto.Message { return &networkingv1.DestinationRule{} },
	"networking.istio.io/Gateway":             func() proto.Message { return &networkingv1.Gateway{} },
	"networking.istio.io/ServiceEntry":        func() proto.Message { return &networkingv1.ServiceEntry{} },
	"telemetry.istio.io/Telemetry":            func() proto.Message { return &telemetryv1.Telemetry{} },
}

func checkIstio(data []byte) []string {
	var problems []string
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			problems = append(problems, fmt.Sprintf("document %d: yaml: %v", i, err))
			continue
		}
		var obj struct {
			APIVersion string         `json:"apiVersion"`
			Kind       string         `json:"kind"`
			Metadata   map[string]any `json:"metadata"`
			Spec       map[string]any `json:"spec"`
		}
		if err := strictJSON(js, &obj); err != nil {
			problems = append(problems, fmt.Sprintf("document %d: %v", i, err))
			continue
		}
		if obj.Kind == "" {
			continue
		}
		group, _, _ := strings.Cut(obj.APIVersion, "/")
		where := fmt.Sprintf("%s %v", obj.Kind, obj.Metadata["name"])
		var target proto.Message
		spec := obj.Spec
		switch {
		case group == "install.istio.io" && obj.Kind == "IstioOperator":
			for k := range spec {
				if k != "meshConfig" && k != "profile" && k != "values" && k != "components" && k != "hub" && k != "tag" && k != "revision" && k != "namespace" {
					problems = append(problems, fmt.Sprintf("%s: spec.%s: unknown field", where, k))
				}
			}
			mc, _ := spec["meshConfig"].(map[string]any)
			spec, target, where = mc, &meshv1alpha1.MeshConfig{}, where+" spec.meshConfig"
		default:
			make, ok := istioSpecs[group+"/"+obj.Kind]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: meshcheck does not know %s", where, obj.APIVersion))
				continue
			}
			target = make()
		}
		specJSON, _ := yaml.Marshal(spec)
		specJS, _ := yaml.YAMLToJSON(specJSON)
		if err := protojson.Unmarshal(specJS, target); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
		}
	}
	return problems
}

func strictJSON(js []byte, v any) error {
	return yaml.UnmarshalStrict(js, v)
}

