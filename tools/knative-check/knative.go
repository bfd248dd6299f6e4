package main

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"
	"knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	asconfig "knative.dev/serving/pkg/autoscaler/config"
	"knative.dev/serving/pkg/autoscaler/config/autoscalerconfig"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	servingAPIVersion  = "serving.knative.dev/v1"
	servingNamespace   = "knative-serving"
	knativeRule        = "knative"
	knativeWarningRule = "knative warning"
	decodeRule         = "decode"
)

// inputs is what one rendered input holds besides its Services: the ConfigMaps and Secrets that the Services'
// environment may refer to.
type inputs struct {
	configMaps map[string]map[string]string // "namespace/name" → data
	secrets    map[string]bool              // "namespace/name"
}

func refKey(namespace, name string) string { return namespace + "/" + name }

// check validates every Knative Service of one input against the cluster config (the -cluster documents,
// overridden by knative-serving ConfigMaps inside the input itself). It returns the findings and the
// names of the Services seen.
func check(docs, cluster []document, inputIsCluster bool) ([]finding, []string) {
	var findings []finding
	configDocs := append(append([]document{}, cluster...), docs...)
	if inputIsCluster {
		configDocs = docs
	}
	cfg, configFindings := clusterConfig(configDocs)
	if inputIsCluster || len(cluster) == 0 {
		findings = append(findings, configFindings...)
	} else {
		// Findings of the -cluster documents are reported once, by main; here only the input's own ones count.
		_, own := clusterConfig(docs)
		findings = append(findings, own...)
	}

	in := inputs{configMaps: map[string]map[string]string{}, secrets: map[string]bool{}}
	for _, d := range docs {
		switch {
		case d.apiVersion == "v1" && d.kind == "ConfigMap":
			var cm corev1.ConfigMap
			if f := decodeStrict(d, &cm); len(f) > 0 {
				findings = append(findings, f...)
				continue
			}
			in.configMaps[refKey(d.namespace, d.name)] = cm.Data
		case d.apiVersion == "v1" && d.kind == "Secret":
			in.secrets[refKey(d.namespace, d.name)] = true
		}
	}

	var services []string
	for _, d := range docs {
		if !strings.HasPrefix(d.apiVersion, "serving.knative.dev/") || d.kind != "Service" {
			continue
		}
		services = append(services, d.name)
		if d.apiVersion != servingAPIVersion {
			findings = append(findings, finding{d.id(), "apiVersion", fmt.Sprintf("%q is not served by Knative Serving; use %s", d.apiVersion, servingAPIVersion), decodeRule})
			continue
		}
		findings = append(findings, checkService(d, cfg, in)...)
	}
	findings = append(findings, configMapRules(docs, in)...)
	findings = append(findings, securityRules(docs, in)...)
	return findings, services
}

// checkService is what the Knative webhook does on create (strict decoding by the API server, then defaulting,
// then validation), followed by the project rules.
func checkService(d document, cfg *config.Config, in inputs) []finding {
	var svc servingv1.Service
	findings, fatal := decodeStrictService(d, &svc)
	if fatal {
		return findings
	}
	// Unknown fields are findings, but the rest of the object is still checked: one run shows every problem.
	written := svc.DeepCopy()

	ctx := apis.WithinCreate(config.ToContext(context.Background(), cfg))
	svc.SetDefaults(ctx)
	if fe := svc.Validate(ctx); fe != nil {
		for _, e := range fe.WrappedErrors() {
			rule := knativeRule
			if e.Level == apis.WarningLevel {
				rule = knativeWarningRule
			}
			msg := e.Message
			if e.Details != "" {
				msg += " (" + e.Details + ")"
			}
			findings = append(findings, finding{d.id(), strings.Join(e.Paths, ", "), msg, rule})
		}
	}
	return append(findings, projectRules(d, written, &svc, cfg, in)...)
}

var unknownFieldPath = regexp.MustCompile(`(?:unknown|duplicate) field "([^"]+)"`)

func decodeStrictService(d document, svc *servingv1.Service) (findings []finding, fatal bool) {
	findings = decodeStrict(d, svc)
	for _, f := range findings {
		if !strings.HasPrefix(f.msg, "unknown field") && !strings.HasPrefix(f.msg, "duplicate field") {
			return findings, true
		}
	}
	return findings, false
}

// decodeStrict decodes like the API server with fieldValidation=Strict: duplicate YAML keys, duplicate JSON
// fields and fields the type does not have are errors, each named by its path.
func decodeStrict(d document, into any) []finding {
	data, err := yaml.YAMLToJSONStrict(d.raw)
	if err != nil {
		return []finding{{d.id(), "", "invalid YAML: " + err.Error(), decodeRule}}
	}
	strictErrs, err := sigsjson.UnmarshalStrict(data, into, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return []finding{{d.id(), "", "cannot decode: " + err.Error(), decodeRule}}
	}
	var findings []finding
	for _, e := range strictErrs {
		field := ""
		if m := unknownFieldPath.FindStringSubmatch(e.Error()); m != nil {
			field = m[1]
		}
		findings = append(findings, finding{d.id(), field, e.Error(), decodeRule})
	}
	return findings
}

// clusterConfig builds the webhook's configuration from the knative-serving config-defaults, config-features
// and config-autoscaler ConfigMaps among docs (Knative's defaults for any that is absent), parsing each with
// Knative's own constructor. Keys Knative would silently ignore are findings too: a misspelt key is a setting
// that is not in effect.
func clusterConfig(docs []document) (*config.Config, []finding) {
	cfg := &config.Config{}
	var findings []finding
	for _, d := range docs {
		if d.apiVersion != "v1" || d.kind != "ConfigMap" || d.namespace != servingNamespace {
			continue
		}
		var cm corev1.ConfigMap
		if f := decodeStrict(d, &cm); len(f) > 0 {
			findings = append(findings, f...)
			continue
		}
		var err error
		switch d.name {
		case config.DefaultsConfigName:
			cfg.Defaults, err = config.NewDefaultsConfigFromConfigMap(&cm)
			findings = append(findings, ignoredKeys(d, cm.Data, func(m map[string]string) (any, error) {
				return config.NewDefaultsConfigFromMap(m)
			})...)
		case config.FeaturesConfigName:
			cfg.Features, err = config.NewFeaturesConfigFromConfigMap(&cm)
			findings = append(findings, featureFlags(d, cm.Data)...)
		case asconfig.ConfigName:
			var as *autoscalerconfig.Config
			as, err = asconfig.NewConfigFromConfigMap(&cm)
			cfg.Autoscaler = as
			findings = append(findings, ignoredKeys(d, cm.Data, func(m map[string]string) (any, error) {
				return asconfig.NewConfigFromMap(m)
			})...)
		default:
			continue
		}
		if err != nil {
			findings = append(findings, finding{d.id(), "data", err.Error(), knativeRule})
		}
	}
	return config.FromContextOrDefaults(config.ToContext(context.Background(), cfg)), findings
}

// ignoredKeys reports keys that Knative's parser neither uses nor rejects: parsing the key alone with an
// absurd value changes nothing and raises no error.
func ignoredKeys(d document, data map[string]string, parse func(map[string]string) (any, error)) []finding {
	defaults, _ := parse(map[string]string{})
	var findings []finding
	for _, key := range sortedKeys(data) {
		if strings.HasPrefix(key, "_") {
			continue // _example and friends are documentation
		}
		parsed, err := parse(map[string]string{key: "§not-a-value§"})
		if err == nil && reflect.DeepEqual(parsed, defaults) {
			findings = append(findings, finding{d.id(), "data." + key, "not a key Knative reads: the setting has no effect (misspelt?)", "known-keys"})
		}
	}
	return findings
}

// featureFlags checks config-features the way ignoredKeys cannot: Knative keeps the default for a value
// that is not Enabled, Disabled or Allowed, without a word.
func featureFlags(d document, data map[string]string) []finding {
	var findings []finding
	for _, key := range sortedKeys(data) {
		if strings.HasPrefix(key, "_") {
			continue
		}
		enabled, _ := config.NewFeaturesConfigFromMap(map[string]string{key: string(config.Enabled)})
		disabled, _ := config.NewFeaturesConfigFromMap(map[string]string{key: string(config.Disabled)})
		if reflect.DeepEqual(enabled, disabled) {
			findings = append(findings, finding{d.id(), "data." + key, "not a feature flag Knative reads: the setting has no effect (misspelt?)", "known-keys"})
			continue
		}
		value := data[key]
		valid := false
		for _, flag := range []config.Flag{config.Enabled, config.Disabled, config.Allowed} {
			if strings.EqualFold(value, string(flag)) {
				valid = true
			}
		}
		if !valid {
			findings = append(findings, finding{d.id(), "data." + key, fmt.Sprintf("%q is not enabled, disabled or allowed: Knative would silently keep the default", value), "known-keys"})
		}
	}
	return findings
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
