{{/* Names, labels, images and security contexts shared by every template. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object; also the core's name. Kept short enough that
"<fullname>-csi-provider-metrics" stays within 63 characters. */}}
{{- define "cairn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Names of the component objects. */}}
{{- define "cairn.core.fullname" -}}{{ include "cairn.fullname" . }}{{- end -}}
{{- define "cairn.core.internalService" -}}{{ include "cairn.fullname" . }}-internal{{- end -}}
{{- define "cairn.core.tlsSecret" -}}{{ include "cairn.fullname" . }}-tls{{- end -}}
{{- define "cairn.operator.fullname" -}}{{ include "cairn.fullname" . }}-operator{{- end -}}
{{- define "cairn.csi.fullname" -}}{{ include "cairn.fullname" . }}-csi-provider{{- end -}}
{{- define "cairn.injector.fullname" -}}{{ include "cairn.fullname" . }}-injector{{- end -}}
{{- define "cairn.injector.tlsSecret" -}}{{ include "cairn.fullname" . }}-injector-tls{{- end -}}

{{/* The core's client address, as the other components reach it. */}}
{{- define "cairn.core.addr" -}}
https://{{ include "cairn.core.fullname" . }}.{{ .Release.Namespace }}.svc:{{ .Values.core.service.port }}
{{- end -}}

{{/* Labels every object carries. Call with (dict "root" $ "component" "core"). */}}
{{- define "cairn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cairn.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: cairn
{{- end -}}

{{/* Labels that select one component's pods. */}}
{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference. Call with (dict "root" $ "image" .Values.core.image). */}}
{{- define "cairn.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag -}}
{{- end -}}

{{- define "cairn.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Restricted Pod Security: the pod level of every non-root component. */}}
{{- define "cairn.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Restricted Pod Security: the container level of every non-root component. */}}
{{- define "cairn.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The projected service-account token (audience of Cairn's Kubernetes
auth) that the operator logs in with. */}}
{{- define "cairn.tokenVolume" -}}
- name: cairn-token
  projected:
    defaultMode: 0440
    sources:
      - serviceAccountToken:
          audience: {{ .Values.operator.tokenAudience }}
          expirationSeconds: 3600
          path: token
{{- end -}}

{{/* The core's CA certificate only (not its key), from the core's TLS Secret. */}}
{{- define "cairn.caVolume" -}}
- name: cairn-ca
  secret:
    secretName: {{ include "cairn.core.tlsSecret" . }}
    defaultMode: 0444
    items:
      - key: ca.crt
        path: ca.crt
{{- end -}}

{{/* Pod anti-affinity of one component, by its selector labels.
Call with (dict "root" $ "component" "core" "mode" "hard"). */}}
{{- define "cairn.antiAffinity" -}}
{{- if eq .mode "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "cairn.selectorLabels" . | nindent 10 }}
{{- else if eq .mode "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "cairn.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end -}}
