{{- define "netpin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "netpin.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "netpin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netpin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "netpin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "netpin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "netpin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "netpin.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "netpin.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "secret" }}
{{- required "certificates.secret.name is required in secret mode" .Values.certificates.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "netpin.fullname" .) }}
{{- end }}
{{- end }}

{{/* The names the API server may use for the Service; the serving certificate carries all of them. */}}
{{- define "netpin.dnsNames" -}}
{{- $svc := include "netpin.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* --claim-grace: claimGraceSeconds, else the webhook's timeout and 5 s. */}}
{{- define "netpin.claimGrace" -}}
{{- .Values.claimGraceSeconds | default (add .Values.webhook.timeoutSeconds 5) | toString }}
{{- end }}

{{/*
Process configuration that takes effect only at start. The certificate is left
out on purpose: netpin reloads a rotated pair without a restart.
*/}}
{{- define "netpin.restartConfig" -}}
{{- dict "cni" .Values.cni "claimGraceSeconds" (include "netpin.claimGrace" .) "egressGraceSeconds" .Values.egressGraceSeconds "logLevel" .Values.logLevel "tlsSecret" (include "netpin.tlsSecretName" .) "clientAuth" (.Values.webhook.clientAuth.enabled | default false) | toJson }}
{{- end }}

{{/*
The ConfigMap that holds the client CA bundle: the chart's own from webhook.clientAuth.caBundle, or
webhook.clientAuth.existingConfigMap. Fails when client authentication is on without exactly one source.
*/}}
{{- define "netpin.clientCaConfigMap" -}}
{{- $a := .Values.webhook.clientAuth }}
{{- $sources := 0 }}
{{- range (list $a.caBundle $a.existingConfigMap $a.existingSecret) }}{{ if . }}{{ $sources = add1 $sources }}{{ end }}{{ end }}
{{- if ne (int $sources) 1 }}
{{- fail "webhook.clientAuth.enabled needs exactly one of webhook.clientAuth.caBundle, existingConfigMap, existingSecret" }}
{{- end }}
{{- if $a.existingConfigMap }}
{{- $a.existingConfigMap }}
{{- else }}
{{- printf "%s-client-ca" (include "netpin.fullname" .) }}
{{- end }}
{{- end }}

{{/* Webhook pieces shared by webhooks.yaml. */}}
{{- define "netpin.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "netpin.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- with .caBundle }}
  caBundle: {{ . }}
  {{- end }}
{{- end }}

{{- define "netpin.workloadRules" -}}
rules:
  # UPDATE: what netpin wrote or pinned stays for the pod's whole life.
  - apiGroups: [""]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["pods"]
    scope: Namespaced
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["deployments", "statefulsets", "daemonsets"]
    scope: Namespaced
  # Their pod templates are checked at apply; nothing is claimed for them, their pods claim.
  - apiGroups: ["batch"]
    apiVersions: ["v1"]
    operations: ["CREATE", "UPDATE"]
    resources: ["jobs", "cronjobs"]
    scope: Namespaced
  # `kubectl scale` and the HorizontalPodAutoscaler go through the subresource only: netpin checks
  # the new replicas there, and reserves new ordinals in order.
  - apiGroups: ["apps"]
    apiVersions: ["v1"]
    operations: ["UPDATE"]
    resources: ["deployments/scale", "statefulsets/scale"]
    scope: Namespaced
{{- end }}

{{/* The namespaces never admitted through netpin, even labelled, as a JSON list (also a CEL list). */}}
{{- define "netpin.excludedNamespaces" -}}
{{- concat (list "kube-system" .Release.Namespace) (.Values.webhook.excludeNamespaces | default list) | uniq | toJson }}
{{- end }}

{{/* Opted-in namespaces only; never kube-system or netpin's own namespace, so netpin cannot block its own recovery. */}}
{{- define "netpin.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: {{ .Values.webhook.optInLabel.key | quote }}
      operator: In
      values: [{{ .Values.webhook.optInLabel.value | toString | quote }}]
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "netpin.excludedNamespaces" . }}
{{- end }}

{{/*
The pods of the ipam-plugin DaemonSet. Not app.kubernetes.io/name: the Service, the
PodDisruptionBudget, the NetworkPolicy and the anti-affinity of the webhook's pods select
name and instance, and must not take these pods for webhook replicas.
*/}}
{{- define "netpin.ipamPluginSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: ipam-plugin
{{- end }}

{{- define "netpin.webhookCommon" -}}
failurePolicy: {{ .Values.webhook.failurePolicy }}
timeoutSeconds: {{ int .Values.webhook.timeoutSeconds }}
sideEffects: NoneOnDryRun
admissionReviewVersions: ["v1"]
matchPolicy: Equivalent
{{- end }}

{{/*
"true" when the ValidatingAdmissionPolicy that keeps netpin's ServiceAccount to the objects labelled as
netpin's is rendered: rbac.managedObjectsPolicy.enabled, and rbac.egressAdmissionPolicy.enabled (its name
before it covered Cilium's pools too) where a release still sets it, on Kubernetes 1.30 and later.
*/}}
{{- define "netpin.managedObjectsPolicy" -}}
{{- $on := .Values.rbac.managedObjectsPolicy.enabled }}
{{- $former := .Values.rbac.egressAdmissionPolicy | default dict }}
{{- if hasKey $former "enabled" }}{{ $on = and $on $former.enabled }}{{ end }}
{{- if and $on (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) }}true{{ end }}
{{- end }}
