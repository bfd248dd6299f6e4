#!/usr/bin/env bash
# Installs the pinned networking layer and Knative Serving on the cluster kubectl points at, then the cluster
# configuration in this folder. Idempotent: re-running applies the same versions again.
#
# Versions. Knative Serving is pinned at 1.15.2 because the checker (tools/knative-check) validates with
# knative.dev/serving v0.42.2, the Go module of that release: the manifests are validated by the same code the
# webhook runs. Upgrading Knative means bumping both together (knative/README.md, "Upgrading Knative").
# net-istio 1.15 was released and tested against Istio 1.22.
set -euo pipefail

KNATIVE_SERVING_VERSION=1.15.2
KNATIVE_NET_ISTIO_VERSION=1.15.0
ISTIO_VERSION=1.22.3

here="$(cd "$(dirname "$0")" && pwd)"
serving="https://github.com/knative/serving/releases/download/knative-v${KNATIVE_SERVING_VERSION}"
net_istio="https://github.com/knative/net-istio/releases/download/knative-v${KNATIVE_NET_ISTIO_VERSION}"

step() { printf '\n== %s\n' "$*"; }

step "Istio ${ISTIO_VERSION} (istioctl ${ISTIO_VERSION} must be on PATH)"
if [[ "$(istioctl version --remote=false --short 2>/dev/null)" != "${ISTIO_VERSION}" ]]; then
  echo "istioctl ${ISTIO_VERSION} is required: curl -sL https://istio.io/downloadIstio | ISTIO_VERSION=${ISTIO_VERSION} sh -" >&2
  exit 1
fi
istioctl install -y -f "${here}/istio/istio-operator.yaml"

step "Knative Serving ${KNATIVE_SERVING_VERSION}: CRDs, core, HPA autoscaler class (overlays/hpa)"
kubectl apply -f "${serving}/serving-crds.yaml"
kubectl wait --for=condition=Established --timeout=120s crd/services.serving.knative.dev
kubectl apply -f "${serving}/serving-core.yaml"
kubectl apply -f "${serving}/serving-hpa.yaml"

step "net-istio ${KNATIVE_NET_ISTIO_VERSION}"
kubectl apply -f "${net_istio}/net-istio.yaml"

step "Sidecars for Knative's own data path (activator, autoscaler) so they reach STRICT-mTLS pods"
kubectl label namespace knative-serving istio-injection=enabled --overwrite
kubectl -n knative-serving rollout restart deployment activator autoscaler
kubectl -n knative-serving rollout status deployment activator autoscaler controller webhook net-istio-controller net-istio-webhook --timeout=300s

step "Cluster configuration (config-*, namespace, mTLS, public routing)"
kubectl apply -k "${here}"

step "Done. Deploy the services with: kubectl apply -k knative/overlays/production"
