package main

// The project's rules: what Knative accepts but this service must not run with. Each finding names the field
// and says why, in terms an operator can act on. knative/README.md lists the rules for operators.

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"knative.dev/networking/pkg/apis/networking"
	"knative.dev/pkg/kmap"
	"knative.dev/serving/pkg/apis/autoscaling"
	"knative.dev/serving/pkg/apis/config"
	"knative.dev/serving/pkg/apis/serving"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
)

const (
	// EnvironmentLabel says which rules apply: "production" adds the availability rules.
	environmentLabel = "data-service.dev/environment"
	// ProductionMinScale keeps one pod in each of the three zones.
	productionMinScale = 3
	zoneTopologyKey    = "topology.kubernetes.io/zone"
	// QueueProxyDrainSeconds is how long queue-proxy's /wait-for-drain (the user container's preStop hook,
	// injected by Knative) keeps the container from getting SIGTERM: drainSleepDuration in
	// knative.dev/serving/pkg/queue/sharedmain. Knative sets terminationGracePeriodSeconds = timeoutSeconds,
	// so the preStop wait, the app's drain and closing its clients must all fit in timeoutSeconds.
	queueProxyDrainSeconds = 30
	// CloseMarginSeconds covers what runs after the app's drain: outbox relay stop (≤ 5 s), producer and pool close.
	closeMarginSeconds = 5
	// Defaults of lib/config, used when a container does not set the variable.
	defaultDrainTimeoutMs     = 25_000
	defaultKeepAliveTimeoutMs = 95_000
	// QueueProxyIdleTimeoutMs: queue-proxy keeps idle upstream connections this long; the app must keep them
	// longer or a request can race the app's close of a reused socket (knative/serving#12414).
	queueProxyIdleTimeoutMs = 90_000
	readinessPath           = "/readyz"
	livenessPath            = "/healthz"
)

// sensitiveEnv must come from a Secret, never a literal or a ConfigMap: they hold credentials.
var sensitiveEnv = []string{"DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "CURSOR_SECRET", "KAFKA_SASL_PASSWORD"}

// extraAnnotations are non-Knative annotation keys the project accepts on a Knative Service. Add a key here
// (with the reason) before using it: an unknown key is far more often a typo than a new setting.
var extraAnnotations = map[string]string{
	"kubectl.kubernetes.io/restartedAt": "written by kubectl rollout restart",
}

// knownAnnotations maps every Knative annotation key to its canonical spelling (itself, or the key an old
// alias stands for), built from Knative's own key lists so that it follows the pinned version.
var knownAnnotations = func() map[string]string {
	known := map[string]string{}
	add := func(keys ...kmap.KeyPriority) {
		for _, priority := range keys {
			for _, key := range priority {
				known[key] = priority[0]
			}
		}
	}
	add(autoscaling.ClassAnnotation, autoscaling.InitialScaleAnnotation, autoscaling.MaxScaleAnnotation,
		autoscaling.MetricAnnotation, autoscaling.MetricAggregationAlgorithmAnnotation, autoscaling.ActivationScale,
		autoscaling.MinScaleAnnotation, autoscaling.PanicThresholdPercentageAnnotation,
		autoscaling.PanicWindowPercentageAnnotation, autoscaling.ScaleDownDelayAnnotation,
		autoscaling.ScaleToZeroPodRetentionPeriodAnnotation, autoscaling.TargetAnnotation,
		autoscaling.TargetBurstCapacityAnnotation, autoscaling.TargetUtilizationPercentageAnnotation,
		autoscaling.WindowAnnotation,
		serving.RolloutDurationAnnotation, serving.QueueSidecarResourcePercentageAnnotation,
		serving.QueueSidecarCPUResourceRequestAnnotation, serving.QueueSidecarCPUResourceLimitAnnotation,
		serving.QueueSidecarMemoryResourceRequestAnnotation, serving.QueueSidecarMemoryResourceLimitAnnotation,
		serving.QueueSidecarEphemeralStorageResourceRequestAnnotation,
		serving.QueueSidecarEphemeralStorageResourceLimitAnnotation, serving.ProgressDeadlineAnnotation,
		networking.IngressClassAnnotation, networking.CertificateClassAnnotation,
		networking.DisableExternalDomainTLSAnnotation, networking.HTTPProtocolAnnotation,
	)
	for _, key := range []string{serving.CreatorAnnotation, serving.UpdaterAnnotation,
		config.QueueProxyPodInfoFeatureKey, config.DryRunFeatureKey, config.AllowHTTPFullDuplexFeatureKey} {
		known[key] = key
	}
	for key := range extraAnnotations {
		known[key] = key
	}
	return known
}()

// kpaOnly are annotations only the Knative Pod Autoscaler reads: with the HPA class they do nothing.
var kpaOnly = map[string]bool{
	autoscaling.PanicWindowPercentageAnnotationKey:    true,
	autoscaling.PanicThresholdPercentageAnnotationKey: true,
	autoscaling.TargetUtilizationPercentageKey:        true,
	autoscaling.ScaleDownDelayAnnotationKey:           true,
	autoscaling.MetricAggregationAlgorithmKey:         true,
	autoscaling.ActivationScaleKey:                    true,
}

const templateAnnotations = "spec.template.metadata.annotations."

// projectRules checks the Service as written (probes, annotations: what the operator wrote) and as defaulted
// by Knative (timeouts, concurrency: what the cluster would run).
func projectRules(d document, written, svc *servingv1.Service, cfg *config.Config, in inputs) []finding {
	var findings []finding
	add := func(field, rule, format string, args ...any) {
		findings = append(findings, finding{d.id(), field, fmt.Sprintf(format, args...), rule})
	}

	environment := written.Labels[environmentLabel]
	if environment != "production" && environment != "local" {
		add("metadata.labels."+environmentLabel, "environment",
			"must be \"production\" or \"local\" (is %q): it selects which rules apply", environment)
	}

	// Every annotation key known, in its canonical spelling, and meaningful for the autoscaler class.
	annotations := written.Spec.Template.Annotations
	class := cfg.Autoscaler.PodAutoscalerClass
	if _, value, ok := autoscaling.ClassAnnotation.Get(annotations); ok {
		class = value
	}
	for prefix, set := range map[string]map[string]string{"metadata.annotations.": written.Annotations, templateAnnotations: annotations} {
		for _, key := range sortedKeys(set) {
			canonical, ok := knownAnnotations[key]
			switch {
			case !ok:
				hint := ""
				if suggestion := closest(key); suggestion != "" {
					hint = fmt.Sprintf("; did you mean %q?", suggestion)
				}
				add(prefix+key, "known-annotations", "unknown annotation key: Knative ignores it, so the setting is not in effect%s", hint)
			case canonical != key:
				add(prefix+key, "known-annotations", "deprecated spelling: write %q", canonical)
			case class == autoscaling.HPA && kpaOnly[key]:
				add(prefix+key, "known-annotations", "only the KPA autoscaler reads it; with class %s it has no effect", class)
			}
		}
	}

	spec := svc.Spec.Template.Spec
	if environment == "production" {
		minScale := cfg.Autoscaler.MinScale
		if _, value, ok := autoscaling.MinScaleAnnotation.Get(annotations); ok {
			if parsed, err := strconv.ParseInt(value, 10, 32); err == nil {
				minScale = int32(parsed)
			}
		}
		if minScale < productionMinScale {
			add(templateAnnotations+autoscaling.MinScaleAnnotationKey, "production-min-scale",
				"is %d; production needs at least %d so that each of the three zones keeps a warm pod", minScale, productionMinScale)
		}
		if _, _, ok := autoscaling.MaxScaleAnnotation.Get(annotations); !ok && cfg.Autoscaler.MaxScale == 0 {
			add(templateAnnotations+autoscaling.MaxScaleAnnotationKey, "production-min-scale",
				"missing: production needs an upper bound that the node group and PostgreSQL connections can carry")
		}
		if !spreadsAcrossZones(spec.TopologySpreadConstraints) {
			add("spec.template.spec.topologySpreadConstraints", "production-zones",
				"missing a constraint on %s: the pods could all land in one zone", zoneTopologyKey)
		}
	}

	// A hard containerConcurrency, and a soft target that does not exceed it.
	metric := autoscaling.Concurrency
	if _, value, ok := autoscaling.MetricAnnotation.Get(annotations); ok {
		metric = value
	}
	if class == autoscaling.KPA && metric == autoscaling.Concurrency {
		cc := int64(0)
		if spec.ContainerConcurrency != nil {
			cc = *spec.ContainerConcurrency
		}
		if cc == 0 {
			add("spec.template.spec.containerConcurrency", "concurrency-target",
				"must be set (> 0): without a hard limit one pod takes every request the router sends and its queue grows without bound")
		} else if _, value, ok := autoscaling.TargetAnnotation.Get(annotations); ok {
			if target, err := strconv.ParseFloat(value, 64); err == nil && target > float64(cc) {
				add(templateAnnotations+autoscaling.TargetAnnotationKey, "concurrency-target",
					"soft target %s is above spec.template.spec.containerConcurrency %d: Knative caps it at %d, so the setting is not what it says; lower it or raise the hard limit", value, cc, cc)
			}
		}
	}

	var timeoutSeconds int64
	if spec.TimeoutSeconds != nil {
		timeoutSeconds = *spec.TimeoutSeconds
	}
	for index := range spec.Containers {
		field := fmt.Sprintf("spec.template.spec.containers[%d]", index)
		findings = append(findings, containerRules(d, field, written.Spec.Template.Spec.Containers[index], svc.Namespace, in, timeoutSeconds)...)
	}
	return findings
}

func containerRules(d document, field string, c corev1.Container, namespace string, in inputs, timeoutSeconds int64) []finding {
	var findings []finding
	add := func(path, rule, format string, args ...any) {
		findings = append(findings, finding{d.id(), path, fmt.Sprintf(format, args...), rule})
	}

	probes := []struct {
		name, path, why string
		probe           *corev1.Probe
	}{
		{"readinessProbe", readinessPath, "it turns false while the function drains, so no new request reaches a stopping pod", c.ReadinessProbe},
		{"livenessProbe", livenessPath, "a wedged process is restarted", c.LivenessProbe},
	}
	for _, p := range probes {
		switch {
		case p.probe == nil:
			add(field+"."+p.name, "probes", "missing: must be an httpGet on %s (%s)", p.path, p.why)
		case p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path:
			add(field+"."+p.name+".httpGet.path", "probes", "must be an httpGet on %s (%s)", p.path, p.why)
		}
	}

	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		request, hasRequest := c.Resources.Requests[name]
		limit, hasLimit := c.Resources.Limits[name]
		if !hasRequest {
			add(fmt.Sprintf("%s.resources.requests.%s", field, name), "resources", "missing: the scheduler and the autoscaler's sizing depend on it")
		}
		if !hasLimit {
			add(fmt.Sprintf("%s.resources.limits.%s", field, name), "resources", "missing: one pod could starve its neighbours")
		}
		if hasRequest && hasLimit && limit.Cmp(request) < 0 {
			add(fmt.Sprintf("%s.resources.limits.%s", field, name), "resources",
				"%s is below resources.requests.%s %s: limits must be at least the requests", limit.String(), name, request.String())
		}
	}

	for _, name := range sensitiveEnv {
		for _, env := range c.Env {
			if env.Name == name && env.ValueFrom == nil {
				add(fmt.Sprintf("%s.env[%s]", field, name), "secret-env", "is a literal: credentials come from a Secret (secretKeyRef or envFrom secretRef), never from the manifest")
			} else if env.Name == name && env.ValueFrom != nil && env.ValueFrom.ConfigMapKeyRef != nil {
				add(fmt.Sprintf("%s.env[%s]", field, name), "secret-env", "comes from a ConfigMap: credentials come from a Secret")
			}
		}
	}

	for index, from := range c.EnvFrom {
		if ref := from.ConfigMapRef; ref != nil && !optional(ref.Optional) {
			if _, ok := in.configMaps[refKey(namespace, ref.Name)]; !ok {
				add(fmt.Sprintf("%s.envFrom[%d].configMapRef.name", field, index), "config-refs",
					"ConfigMap %q is not among the rendered resources: settings must be versioned with the manifests", ref.Name)
			}
		}
	}

	drain, drainOrigin, drainKnown := resolveEnv(c, namespace, in, "DRAIN_TIMEOUT_MS", defaultDrainTimeoutMs)
	if !drainKnown {
		add(field+".env[DRAIN_TIMEOUT_MS]", "drain", "cannot be resolved offline (%s): set it in the container env or a rendered ConfigMap", drainOrigin)
	} else if drainMs, err := strconv.ParseInt(drain, 10, 64); err != nil {
		add(field+".env[DRAIN_TIMEOUT_MS]", "drain", "%q (%s) is not a number of milliseconds", drain, drainOrigin)
	} else {
		needed := queueProxyDrainSeconds + int64(math.Ceil(float64(drainMs)/1000)) + closeMarginSeconds
		if timeoutSeconds < needed {
			add("spec.template.spec.timeoutSeconds", "drain",
				"%d s is below the shutdown budget of %d s (queue-proxy drain %d s + DRAIN_TIMEOUT_MS %d ms from %s + %d s to close clients): Knative sets terminationGracePeriodSeconds = timeoutSeconds, so the kubelet would kill the pod mid-drain",
				timeoutSeconds, needed, queueProxyDrainSeconds, drainMs, drainOrigin, closeMarginSeconds)
		}
	}

	keepAlive, keepAliveOrigin, keepAliveKnown := resolveEnv(c, namespace, in, "KEEP_ALIVE_TIMEOUT_MS", defaultKeepAliveTimeoutMs)
	if keepAliveKnown {
		if ms, err := strconv.ParseInt(keepAlive, 10, 64); err != nil || ms <= queueProxyIdleTimeoutMs {
			add(field+".env[KEEP_ALIVE_TIMEOUT_MS]", "keep-alive",
				"%q (%s) must exceed queue-proxy's %d ms idle timeout, or queue-proxy may reuse a socket the app is closing (knative/serving#12414)",
				keepAlive, keepAliveOrigin, queueProxyIdleTimeoutMs)
		}
	}
	return findings
}

// configMapRules: a rendered ConfigMap must not carry credentials.
func configMapRules(docs []document, in inputs) []finding {
	var findings []finding
	for _, d := range docs {
		if d.apiVersion != "v1" || d.kind != "ConfigMap" {
			continue
		}
		data := in.configMaps[refKey(d.namespace, d.name)]
		for _, name := range sensitiveEnv {
			if _, ok := data[name]; ok {
				findings = append(findings, finding{d.id(), "data." + name, "credentials belong in a Secret, not a ConfigMap", "secret-env"})
			}
		}
	}
	return findings
}

// resolveEnv finds the value a container would see for name, or the app's default when it is unset; known is
// false when the value lives outside the rendered set (a Secret, or a ConfigMap that is not rendered); origin
// says where it comes from.
func resolveEnv(c corev1.Container, namespace string, in inputs, name string, fallback int) (value, origin string, known bool) {
	value, origin, set, known := lookupEnv(c, namespace, in, name)
	if known && !set {
		return strconv.Itoa(fallback), "the app's default", true
	}
	return value, origin, known
}

// lookupEnv finds the value a container would see for name, following Kubernetes' precedence (env over envFrom,
// later sources over earlier ones). set is false when nothing rendered sets it; known is false when the value
// lives outside the rendered set (a Secret, or a ConfigMap that is not rendered).
func lookupEnv(c corev1.Container, namespace string, in inputs, name string) (value, origin string, set, known bool) {
	origin, known = "unset", true
	for _, from := range c.EnvFrom {
		key := strings.TrimPrefix(name, from.Prefix)
		if from.Prefix != "" && !strings.HasPrefix(name, from.Prefix) {
			continue
		}
		switch {
		case from.ConfigMapRef != nil:
			if data, ok := in.configMaps[refKey(namespace, from.ConfigMapRef.Name)]; ok {
				if v, ok := data[key]; ok {
					value, origin, set, known = v, "ConfigMap "+from.ConfigMapRef.Name, true, true
				}
			}
		case from.SecretRef != nil:
			// A Secret's keys are unknown offline; credentials are the only thing expected there.
		}
	}
	for _, env := range c.Env {
		if env.Name != name {
			continue
		}
		switch {
		case env.ValueFrom == nil:
			value, origin, set, known = env.Value, "the container env", true, true
		case env.ValueFrom.ConfigMapKeyRef != nil:
			ref := env.ValueFrom.ConfigMapKeyRef
			data, ok := in.configMaps[refKey(namespace, ref.Name)]
			v, hasKey := data[ref.Key]
			if ok && hasKey {
				value, origin, set, known = v, "ConfigMap "+ref.Name, true, true
			} else {
				value, origin, set, known = "", fmt.Sprintf("ConfigMap %s key %s, not rendered", ref.Name, ref.Key), true, false
			}
		default:
			value, origin, set, known = "", "a Secret or field reference", true, false
		}
	}
	return value, origin, set, known
}

func optional(flag *bool) bool { return flag != nil && *flag }

func spreadsAcrossZones(constraints []corev1.TopologySpreadConstraint) bool {
	for _, c := range constraints {
		if c.TopologyKey == zoneTopologyKey && c.MaxSkew >= 1 {
			return true
		}
	}
	return false
}

// closest suggests the known annotation key nearest to a misspelt one (edit distance ≤ 4).
func closest(key string) string {
	best, bestDistance := "", 5
	candidates := sortedKeys(knownAnnotations)
	sort.Strings(candidates)
	for _, candidate := range candidates {
		if d := levenshtein(strings.ToLower(key), strings.ToLower(candidate)); d < bestDistance {
			best, bestDistance = knownAnnotations[candidate], d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	previous := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current := make([]int, len(b)+1)
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous = current
	}
	return previous[len(b)]
}
