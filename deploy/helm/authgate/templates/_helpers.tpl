{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "authgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless it is already in it. */}}
{{- define "authgate.fullname" -}}
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

{{- define "authgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "authgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "authgate.labels" -}}
helm.sh/chart: {{ include "authgate.chart" . }}
{{ include "authgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret holding the client secret: the user's, or the one this chart creates. */}}
{{- define "authgate.secretName" -}}
{{- if .Values.clientSecret.existingSecret }}
{{- .Values.clientSecret.existingSecret }}
{{- else }}
{{- include "authgate.fullname" . }}
{{- end }}
{{- end }}

{{- define "authgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* [upstream].url: explicit, or the app container on loopback in sidecar mode. */}}
{{- define "authgate.upstreamUrl" -}}
{{- if .Values.upstream.url }}
{{- .Values.upstream.url }}
{{- else if eq .Values.mode "sidecar" }}
{{- printf "http://127.0.0.1:%d" (int .Values.app.port) }}
{{- else }}
{{- fail "upstream.url is required with mode: standalone" }}
{{- end }}
{{- end }}

{{/* Render a map as TOML key = value lines (JSON scalars and arrays are valid TOML). */}}
{{- define "authgate.tomlKeys" -}}
{{- range $key, $value := . }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}

{{/* gateway.toml */}}
{{- define "authgate.gatewayToml" -}}
{{- if not (has .Values.mode (list "sidecar" "standalone")) }}
{{- fail (printf "mode must be sidecar or standalone, not %q" .Values.mode) }}
{{- end -}}
# Rendered by the authgate Helm chart from its values; every key is documented in gateway.toml.
[server]
listen = {{ printf "0.0.0.0:%d" (int .Values.server.port) | toJson }}
admin_listen = {{ printf "0.0.0.0:%d" (int .Values.server.adminPort) | toJson }}
{{- if .Values.server.threads }}
threads = {{ int .Values.server.threads }}
{{- end }}
endpoint_prefix = {{ .Values.server.endpointPrefix | toJson }}
log_level = {{ .Values.server.logLevel | toJson }}
log_format = {{ .Values.server.logFormat | toJson }}
pid_file = "/tmp/authgate.pid"
upgrade_sock = "/tmp/authgate_upgrade.sock"
grace_period = {{ .Values.server.gracePeriod | toJson }}
{{- if .Values.server.tls.enabled }}

[server.tls]
cert_file = "/etc/authgate-tls/tls.crt"
key_file = "/etc/authgate-tls/tls.key"
{{- end }}

[upstream]
url = {{ include "authgate.upstreamUrl" . | toJson }}
connect_timeout = {{ .Values.upstream.connectTimeout | toJson }}
read_timeout = {{ .Values.upstream.readTimeout | toJson }}

[oidc]
issuer = {{ required "oidc.issuer is required" .Values.oidc.issuer | toJson }}
client_id = {{ required "oidc.clientId is required" .Values.oidc.clientId | toJson }}
client_secret = "${AUTHGATE_CLIENT_SECRET}"
redirect_url = {{ required "oidc.redirectUrl is required" .Values.oidc.redirectUrl | toJson }}
scopes = {{ .Values.oidc.scopes | toJson }}
{{- include "authgate.tomlKeys" .Values.oidc.settings }}
{{- with .Values.session }}

[session]
{{- include "authgate.tomlKeys" . }}
{{- end }}
{{- with .Values.extraConfig }}

{{ . }}
{{- end }}
{{- end }}
