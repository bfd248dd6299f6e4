package main

// Production security rules (DESIGN.md invariant 7; docs/security.md): what the Knative webhook accepts but a
// production deployment of this service must not run without — the mesh's check of the bearer token, an allow
// list per function, a network policy, one database user per workload, authenticated Kafka, authentication on,
// and no probe or /metrics path on a public route. The Istio kinds are decoded leniently into the few fields the
// rules read (the Istio API module is not a dependency); Kubernetes kinds strictly, as the API server would.

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

const (
	istioSecurityAPI = "security.istio.io/"
	istioNetworkAPI  = "networking.istio.io/"
	// publicPath is what every rule about the public API asks: may a request to it get through?
	publicPath = "/data"
	// databaseURL is the variable whose Secret must not be shared: it names the database user.
	databaseURL = "DATABASE_URL"
)

// privatePaths are served on the function's own port for the kubelet, Knative and Prometheus; a public route
// that reaches one of them exposes the process's internals (DESIGN.md "HTTP API").
var privatePaths = []string{"/metrics", "/healthz", "/readyz"}

// kafkaSASL are the mechanisms lib/config accepts that do not send the password itself. (MSK IAM would be the
// other acceptable choice; lib/config does not offer it yet.)
var kafkaSASL = map[string]bool{"scram-sha-256": true, "scram-sha-512": true}

type istioSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// selects mirrors Istio's workload selector: no selector means every workload of the namespace.
func (s *istioSelector) selects(podLabels map[string]string) bool {
	if s == nil {
		return true
	}
	return labels.SelectorFromSet(s.MatchLabels).Matches(labels.Set(podLabels))
}

type requestAuthentication struct {
	Spec struct {
		Selector *istioSelector `json:"selector"`
		JWTRules []struct {
			Issuer               string   `json:"issuer"`
			JWKSURI              string   `json:"jwksUri"`
			JWKS                 string   `json:"jwks"`
			Audiences            []string `json:"audiences"`
			ForwardOriginalToken bool     `json:"forwardOriginalToken"`
		} `json:"jwtRules"`
	} `json:"spec"`
}

type authorizationPolicy struct {
	Spec struct {
		Selector *istioSelector `json:"selector"`
		Action   string         `json:"action"`
		Rules    []struct {
			From []authzFrom `json:"from"`
			To   []authzTo   `json:"to"`
			When []authzWhen `json:"when"`
		} `json:"rules"`
	} `json:"spec"`
}

type authzFrom struct {
	Source struct {
		RequestPrincipals []string `json:"requestPrincipals"`
	} `json:"source"`
}

type authzTo struct {
	Operation struct {
		Paths    []string `json:"paths"`
		NotPaths []string `json:"notPaths"`
	} `json:"operation"`
}

type authzWhen struct {
	Key string `json:"key"`
}

type virtualService struct {
	Spec struct {
		Gateways []string `json:"gateways"`
		HTTP     []struct {
			Name  string      `json:"name"`
			Match []httpMatch `json:"match"`
		} `json:"http"`
	} `json:"spec"`
}

type httpMatch struct {
	URI *struct {
		Exact  string `json:"exact"`
		Prefix string `json:"prefix"`
		Regex  string `json:"regex"`
	} `json:"uri"`
}

// workload is a production pod template: a Knative Service's revisions or a (Cron)Job's pods.
type workload struct {
	id         string
	namespace  string
	podLabels  map[string]string
	containers []corev1.Container
	service    bool   // a Knative Service: a function on the public path
	account    string // its pods' ServiceAccount ("" is the namespace's default)
}

// securityRules applies the production security rules to one rendered input.
func securityRules(docs []document, in inputs) []finding {
	var findings []finding
	var workloads []workload
	accounts := map[string]corev1.ServiceAccount{}
	var requestAuths []struct {
		d    document
		spec requestAuthentication
	}
	var policies []struct {
		d    document
		spec authorizationPolicy
	}
	var netpols []struct {
		d    document
		spec networkingv1.NetworkPolicy
	}
	for _, d := range docs {
		switch {
		case d.apiVersion == servingAPIVersion && d.kind == "Service":
			var svc servingv1.Service
			if yaml.Unmarshal(d.raw, &svc) != nil || svc.Labels[environmentLabel] != "production" {
				continue
			}
			podLabels := map[string]string{}
			for k, v := range svc.Spec.Template.Labels {
				podLabels[k] = v
			}
			// Labels Knative puts on every pod of the Service's revisions.
			podLabels["serving.knative.dev/service"] = svc.Name
			podLabels["serving.knative.dev/configuration"] = svc.Name
			workloads = append(workloads, workload{d.id(), d.namespace, podLabels, svc.Spec.Template.Spec.Containers, true, svc.Spec.Template.Spec.ServiceAccountName})
		case d.apiVersion == "batch/v1" && (d.kind == "CronJob" || d.kind == "Job"):
			var template corev1.PodTemplateSpec
			var metadata metav1.ObjectMeta
			if d.kind == "CronJob" {
				var cron batchv1.CronJob
				if f := decodeStrict(d, &cron); len(f) > 0 {
					findings = append(findings, f...)
					continue
				}
				template, metadata = cron.Spec.JobTemplate.Spec.Template, cron.ObjectMeta
			} else {
				var job batchv1.Job
				if f := decodeStrict(d, &job); len(f) > 0 {
					findings = append(findings, f...)
					continue
				}
				template, metadata = job.Spec.Template, job.ObjectMeta
			}
			if metadata.Labels[environmentLabel] == "production" {
				workloads = append(workloads, workload{d.id(), d.namespace, template.Labels, template.Spec.Containers, false, template.Spec.ServiceAccountName})
			}
		case d.apiVersion == "v1" && d.kind == "ServiceAccount":
			var account corev1.ServiceAccount
			if f := decodeStrict(d, &account); len(f) > 0 {
				findings = append(findings, f...)
				continue
			}
			accounts[refKey(d.namespace, account.Name)] = account
		case strings.HasPrefix(d.apiVersion, istioSecurityAPI) && d.kind == "RequestAuthentication":
			var ra requestAuthentication
			if err := yaml.Unmarshal(d.raw, &ra); err != nil {
				findings = append(findings, finding{d.id(), "", "cannot decode: " + err.Error(), decodeRule})
				continue
			}
			requestAuths = append(requestAuths, struct {
				d    document
				spec requestAuthentication
			}{d, ra})
		case strings.HasPrefix(d.apiVersion, istioSecurityAPI) && d.kind == "AuthorizationPolicy":
			var ap authorizationPolicy
			if err := yaml.Unmarshal(d.raw, &ap); err != nil {
				findings = append(findings, finding{d.id(), "", "cannot decode: " + err.Error(), decodeRule})
				continue
			}
			policies = append(policies, struct {
				d    document
				spec authorizationPolicy
			}{d, ap})
		case d.apiVersion == "networking.k8s.io/v1" && d.kind == "NetworkPolicy":
			var np networkingv1.NetworkPolicy
			if f := decodeStrict(d, &np); len(f) > 0 {
				findings = append(findings, f...)
				continue
			}
			netpols = append(netpols, struct {
				d    document
				spec networkingv1.NetworkPolicy
			}{d, np})
		case strings.HasPrefix(d.apiVersion, istioNetworkAPI) && d.kind == "VirtualService":
			findings = append(findings, publicRouteRules(d)...)
		}
	}

	for _, w := range workloads {
		add := func(field, rule, format string, args ...any) {
			findings = append(findings, finding{w.id, field, fmt.Sprintf(format, args...), rule})
		}
		if !w.service {
			continue
		}

		// The mesh validates the token (second check of the app's), and forwards it to the app.
		var issuers, jwksURIs []string
		validating := false
		for _, ra := range requestAuths {
			if ra.d.namespace != w.namespace || !ra.spec.Spec.Selector.selects(w.podLabels) {
				continue
			}
			for _, rule := range ra.spec.Spec.JWTRules {
				if usableJWTRule(rule.Issuer, rule.JWKSURI, rule.JWKS, rule.ForwardOriginalToken) {
					validating = true
					issuers = append(issuers, rule.Issuer)
					jwksURIs = append(jwksURIs, rule.JWKSURI)
				}
			}
		}
		if !validating {
			add("", "mesh-auth", "no RequestAuthentication with a JWT rule selects its pods: the mesh would not check the bearer tokens the app verifies (docs/security.md, \"Network\")")
		}

		// An ALLOW policy selects the pods (so that what it does not allow is refused), and none of its rules lets
		// the public path through without a validated request principal.
		allowing := false
		for _, p := range policies {
			action := p.spec.Spec.Action
			if p.d.namespace != w.namespace || (action != "" && action != "ALLOW") || !p.spec.Spec.Selector.selects(w.podLabels) {
				continue
			}
			allowing = true
			for index, rule := range p.spec.Spec.Rules {
				if reachesPublicPath(rule.To) && !requiresPrincipal(rule.From, rule.When) {
					findings = append(findings, finding{p.d.id(), fmt.Sprintf("spec.rules[%d]", index),
						fmt.Sprintf("lets %s through without a validated token: give it from.source.requestPrincipals (the public routes need a valid JWT)", publicPath), "mesh-auth"})
				}
			}
		}
		if !allowing {
			add("", "mesh-auth", "no ALLOW AuthorizationPolicy selects its pods: any caller that reaches them would be let through without a validated token")
		}

		// A NetworkPolicy restricts who may connect at all.
		isolated := false
		for _, np := range netpols {
			if np.d.namespace != w.namespace || !hasIngressType(np.spec.Spec) {
				continue
			}
			selector, err := metav1.LabelSelectorAsSelector(&np.spec.Spec.PodSelector)
			if err != nil || !selector.Matches(labels.Set(w.podLabels)) {
				continue
			}
			isolated = true
		}
		if !isolated {
			add("", "network-policy", "no NetworkPolicy of type Ingress selects its pods: every pod of the cluster could connect to it")
		}

		for index, c := range w.containers {
			field := fmt.Sprintf("spec.template.spec.containers[%d]", index)
			findings = append(findings, authModeRules(w, field, c, in, issuers, jwksURIs)...)
			findings = append(findings, kafkaRules(w, field, c, in)...)
		}
	}

	// Each JWT rule once, whatever it selects (a rule that does not count is also why a Service is unprotected).
	for _, ra := range requestAuths {
		for index, rule := range ra.spec.Spec.JWTRules {
			field := fmt.Sprintf("spec.jwtRules[%d]", index)
			switch {
			case rule.Issuer == "" || (rule.JWKSURI == "" && rule.JWKS == ""):
				findings = append(findings, finding{ra.d.id(), field, "needs an issuer and a jwksUri: Istio cannot validate a token without them", "mesh-auth"})
			case !rule.ForwardOriginalToken:
				findings = append(findings, finding{ra.d.id(), field + ".forwardOriginalToken", "must be true: Istio strips a validated token otherwise, and the app, which verifies it again and reads its scopes, would answer 401", "mesh-auth"})
			}
		}
	}

	for _, np := range netpols {
		for index, rule := range np.spec.Spec.Ingress {
			field := fmt.Sprintf("spec.ingress[%d].from", index)
			if len(rule.From) == 0 {
				findings = append(findings, finding{np.d.id(), field, "is empty, which allows every source: name the peers (the ingress gateway, Knative's activator and autoscaler, Prometheus)", "network-policy"})
			}
			for _, peer := range rule.From {
				if peer.IPBlock != nil && (peer.IPBlock.CIDR == "0.0.0.0/0" || peer.IPBlock.CIDR == "::/0") {
					findings = append(findings, finding{np.d.id(), field, fmt.Sprintf("ipBlock %s allows every address", peer.IPBlock.CIDR), "network-policy"})
				}
			}
		}
	}

	findings = append(findings, awsIdentityRules(workloads, accounts, in)...)
	return append(findings, sharedDatabaseSecrets(workloads)...)
}

// roleAnnotation is how IRSA gives a pod an IAM role: the EKS webhook mounts a web-identity token for it.
const roleAnnotation = "eks.amazonaws.com/role-arn"

// awsIdentityRules: only the job that archives to S3 holds an AWS role (knative/cluster/eks/archive-bucket.yaml),
// and it does hold one — without it the hourly archive fails, and retention keeps every old day for ever. The
// functions read only PostgreSQL's record of the archive and must not carry S3 credentials.
func awsIdentityRules(workloads []workload, accounts map[string]corev1.ServiceAccount, in inputs) []finding {
	var findings []finding
	for _, w := range workloads {
		name := w.account
		if name == "" {
			name = "default"
		}
		account, declared := accounts[refKey(w.namespace, name)]
		role := account.Annotations[roleAnnotation]
		if w.service {
			if role != "" {
				findings = append(findings, finding{w.id, "spec.template.spec.serviceAccountName", fmt.Sprintf("ServiceAccount %q has the IAM role %s: the functions call no AWS API; only the archive job may hold one (docs/security.md)", name, role), "aws-identity"})
			}
			continue
		}
		for index, c := range w.containers {
			if !archives(c) {
				continue
			}
			bucket, origin, set, known := lookupSetting(c, w.namespace, in, "S3_BUCKET")
			if !known || !set {
				continue
			}
			if role == "" {
				why := "has no " + roleAnnotation
				if !declared {
					why = "is not declared in these manifests"
				}
				findings = append(findings, finding{w.id, fmt.Sprintf("spec.template.spec.containers[%d]", index), fmt.Sprintf("archives to S3 bucket %q (%s) but ServiceAccount %q %s: the job would find no credentials and retention would keep every old day (knative/cluster/eks/archive-bucket.yaml)", bucket, origin, name, why), "aws-identity"})
			}
		}
	}
	return findings
}

// archives: the container runs a command that writes the archive (the maintenance run or the archive job).
func archives(c corev1.Container) bool {
	for _, arg := range append(append([]string{}, c.Command...), c.Args...) {
		if arg == "--maintain-only" || strings.HasSuffix(arg, "archive.mjs") {
			return true
		}
	}
	return false
}

// usableJWTRule: Istio can validate tokens with it, and hands them on to the app.
func usableJWTRule(issuer, jwksURI, jwks string, forward bool) bool {
	return issuer != "" && (jwksURI != "" || jwks != "") && forward
}

// lookupSetting is lookupEnv as lib/config reads it: an empty value counts as unset.
func lookupSetting(c corev1.Container, namespace string, in inputs, name string) (value, origin string, set, known bool) {
	value, origin, set, known = lookupEnv(c, namespace, in, name)
	if known && set && value == "" {
		set = false
	}
	return value, origin, set, known
}

// authModeRules: production authenticates (AUTH_MODE set and not none), with the issuer and JWKS the mesh uses.
func authModeRules(w workload, field string, c corev1.Container, in inputs, issuers, jwksURIs []string) []finding {
	var findings []finding
	add := func(path, format string, args ...any) {
		findings = append(findings, finding{w.id, path, fmt.Sprintf(format, args...), "auth-mode"})
	}
	mode, origin, set, known := lookupSetting(c, w.namespace, in, "AUTH_MODE")
	switch {
	case !known:
		add(field+".env[AUTH_MODE]", "cannot be resolved offline (%s): set it in a rendered ConfigMap or the container env", origin)
	case !set:
		add(field+".env[AUTH_MODE]", "missing: production must authenticate callers (AUTH_MODE=jwt with AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE)")
	case strings.EqualFold(mode, "none"):
		add(field+".env[AUTH_MODE]", "is none (%s): production must authenticate every caller of /data", origin)
	}
	for _, pair := range []struct {
		name  string
		istio []string
		what  string
	}{{"AUTH_ISSUER", issuers, "issuer"}, {"AUTH_JWKS_URL", jwksURIs, "jwksUri"}} {
		value, origin, set, known := lookupSetting(c, w.namespace, in, pair.name)
		if !known || !set || len(pair.istio) == 0 {
			continue
		}
		if !contains(pair.istio, value) {
			add(field+".env["+pair.name+"]", "%q (%s) is not the %s the RequestAuthentication validates (%s): the mesh and the app must check the same tokens",
				value, origin, pair.what, strings.Join(pair.istio, ", "))
		}
	}
	return findings
}

// kafkaRules: a container that talks to Kafka authenticates itself (SASL/SCRAM) over TLS, never anonymously.
func kafkaRules(w workload, field string, c corev1.Container, in inputs) []finding {
	_, brokersOrigin, set, known := lookupSetting(c, w.namespace, in, "KAFKA_BROKERS")
	if !known || !set {
		return nil
	}
	var findings []finding
	add := func(name, format string, args ...any) {
		findings = append(findings, finding{w.id, field + ".env[" + name + "]", fmt.Sprintf(format, args...), "kafka-auth"})
	}
	mechanism, origin, set, known := lookupSetting(c, w.namespace, in, "KAFKA_SASL_MECHANISM")
	switch {
	case !known:
		add("KAFKA_SASL_MECHANISM", "cannot be resolved offline (%s): set it in a rendered ConfigMap or the container env", origin)
	case !set:
		add("KAFKA_SASL_MECHANISM", "missing while KAFKA_BROKERS is set (%s): production brokers need SASL/SCRAM (scram-sha-512) or IAM; TLS alone authenticates the broker, not this client", brokersOrigin)
	case !kafkaSASL[strings.ToLower(mechanism)]:
		add("KAFKA_SASL_MECHANISM", "%q (%s) sends the password itself: use scram-sha-512 (or scram-sha-256)", mechanism, origin)
	}
	ssl, origin, set, known := lookupSetting(c, w.namespace, in, "KAFKA_SSL")
	if known && (!set || !(ssl == "1" || strings.EqualFold(ssl, "true"))) {
		if !set {
			origin = "the app's default"
		}
		add("KAFKA_SSL", "is not on (%s): SASL credentials and records must not cross the network in clear text", origin)
	}
	return findings
}

// sharedDatabaseSecrets: each workload connects as its own database user (ds_ingest, ds_query, ds_migrate), so
// no Secret that may provide DATABASE_URL is given to two of them.
func sharedDatabaseSecrets(workloads []workload) []finding {
	users := map[string][]string{} // Secret → workloads it may give DATABASE_URL to
	for _, w := range workloads {
		seen := map[string]bool{}
		for _, c := range w.containers {
			for _, name := range databaseSecrets(c) {
				key := refKey(w.namespace, name)
				if !seen[key] {
					seen[key] = true
					users[key] = append(users[key], w.id)
				}
			}
		}
	}
	var findings []finding
	for _, key := range sortedKeys(users) {
		ids := users[key]
		if len(ids) < 2 {
			continue
		}
		name := key[strings.Index(key, "/")+1:]
		for index, id := range ids {
			others := append(append([]string{}, ids[:index]...), ids[index+1:]...)
			findings = append(findings, finding{id, "", fmt.Sprintf("shares Secret %q, which may provide %s, with %s: each function connects as its own database user (ingest → ds_ingest, query → ds_query, migrations → ds_migrate; docs/security.md)",
				name, databaseURL, strings.Join(others, ", ")), "db-secret"})
		}
	}
	return findings
}

// databaseSecrets are the Secrets a container may take DATABASE_URL from: whole Secrets without a prefix, and a
// secretKeyRef for the variable itself.
func databaseSecrets(c corev1.Container) []string {
	var names []string
	for _, from := range c.EnvFrom {
		if from.SecretRef != nil && from.Prefix == "" {
			names = append(names, from.SecretRef.Name)
		}
	}
	for _, env := range c.Env {
		if env.Name == databaseURL && env.ValueFrom != nil && env.ValueFrom.SecretKeyRef != nil {
			names = append(names, env.ValueFrom.SecretKeyRef.Name)
		}
	}
	sort.Strings(names)
	return names
}

// publicRouteRules: a VirtualService on a gateway (anything but the mesh itself) is a public route, and no
// route of it may reach a probe or /metrics.
func publicRouteRules(d document) []finding {
	var vs virtualService
	if err := yaml.Unmarshal(d.raw, &vs); err != nil {
		return []finding{{d.id(), "", "cannot decode: " + err.Error(), decodeRule}}
	}
	public := false
	for _, gateway := range vs.Spec.Gateways {
		if gateway != "mesh" {
			public = true
		}
	}
	if !public {
		return nil
	}
	var findings []finding
	for index, route := range vs.Spec.HTTP {
		var reached []string
		for _, path := range privatePaths {
			if routeMatches(route.Match, path) {
				reached = append(reached, path)
			}
		}
		if len(reached) > 0 {
			findings = append(findings, finding{d.id(), fmt.Sprintf("spec.http[%d]", index),
				fmt.Sprintf("route %q reaches %s on a public gateway: probes and /metrics are served on the function's own port only, never on the public routes", route.Name, strings.Join(reached, ", ")), "public-routes"})
		}
	}
	return findings
}

func routeMatches(matches []httpMatch, path string) bool {
	if len(matches) == 0 {
		return true // a route without match conditions takes every request
	}
	for _, m := range matches {
		switch {
		case m.URI == nil:
			return true
		case m.URI.Exact != "":
			if m.URI.Exact == path {
				return true
			}
		case m.URI.Prefix != "":
			if strings.HasPrefix(path, m.URI.Prefix) {
				return true
			}
		case m.URI.Regex != "":
			// Istio matches URIs with RE2 against the whole path; Go's regexp is RE2.
			if re, err := regexp.Compile("^(?:" + m.URI.Regex + ")$"); err == nil && re.MatchString(path) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// reachesPublicPath: could an operation list of an AuthorizationPolicy rule match a request for the public API?
func reachesPublicPath(to []authzTo) bool {
	if len(to) == 0 {
		return true
	}
	for _, t := range to {
		excluded := false
		for _, pattern := range t.Operation.NotPaths {
			if istioPathMatches(pattern, publicPath) {
				excluded = true
			}
		}
		if excluded {
			continue
		}
		if len(t.Operation.Paths) == 0 {
			return true
		}
		for _, pattern := range t.Operation.Paths {
			if istioPathMatches(pattern, publicPath) || istioPathMatches(pattern, publicPath+"/x") {
				return true
			}
		}
	}
	return false
}

// requiresPrincipal: every source of the rule names request principals (or a condition on the principal).
func requiresPrincipal(from []authzFrom, when []authzWhen) bool {
	for _, condition := range when {
		if condition.Key == "request.auth.principal" {
			return true
		}
	}
	if len(from) == 0 {
		return false
	}
	for _, f := range from {
		if len(f.Source.RequestPrincipals) == 0 {
			return false
		}
	}
	return true
}

// istioPathMatches follows Istio's path match: exact, "prefix*", "*suffix", or "*".
func istioPathMatches(pattern, path string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, strings.TrimPrefix(pattern, "*"))
	default:
		return pattern == path
	}
}

func hasIngressType(spec networkingv1.NetworkPolicySpec) bool {
	if len(spec.PolicyTypes) == 0 {
		return true // Kubernetes defaults policyTypes to [Ingress] (plus Egress when egress rules exist)
	}
	for _, t := range spec.PolicyTypes {
		if t == networkingv1.PolicyTypeIngress {
			return true
		}
	}
	return false
}

func contains(list []string, value string) bool {
	for _, item := range list {
		if item == value {
			return true
		}
	}
	return false
}
