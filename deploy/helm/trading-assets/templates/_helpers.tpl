{{- define "trading.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}

{{/* The labels of one component: its name, and what it is part of. */}}
{{- define "trading.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: trading-assets
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ .root.Chart.Name }}-{{ .root.Chart.Version }}
{{- end }}

{{/* The env entries of the named credentials, each from its Secret (values: secretEnv). */}}
{{- define "trading.secretEnv" -}}
{{- range .names }}
{{- $ref := required (printf "secretEnv.%s: no Secret named for it" .) (index $.root.Values.secretEnv .) }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secret }}
      key: {{ $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* A container's image, command and settings: what every container of the chart shares. */}}
{{- define "trading.container" -}}
image: {{ include "trading.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
envFrom:
  - configMapRef:
      name: trading-settings
env:
  {{- include "trading.secretEnv" . | trim | nindent 2 }}
  {{- range $name, $value := .env }}
  - name: {{ $name }}
    value: {{ $value | quote }}
  {{- end }}
{{- end }}

{{/* The live services' probes: the supervisor's timings, liveness and startup on /healthz. */}}
{{- define "trading.liveProbes" -}}
{{- $p := .Values.live.probe -}}
startupProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.startupFailureThreshold }}
livenessProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
readinessProbe:
  httpGet: {path: /readyz, port: health}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  failureThreshold: {{ $p.failureThreshold }}
{{- end }}

{{/* Prometheus's scrape annotations for a pod serving /metrics on `port`. */}}
{{- define "trading.scrape" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end }}
