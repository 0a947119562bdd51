{{/* Names and labels shared by every object of the chart. */}}
{{- define "plannt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "plannt.fullname" -}}
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

{{- define "plannt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plannt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "plannt.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "plannt.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: plannt
{{- end }}

{{- define "plannt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "plannt.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "plannt.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding the root keys: the user's, or the chart's own. */}}
{{- define "plannt.rootKeysSecret" -}}
{{- default (include "plannt.fullname" .) .Values.rootKeys.existingSecret }}
{{- end }}

{{- define "plannt.rootKeysSecretKey" -}}
{{- if .Values.rootKeys.existingSecret }}{{ .Values.rootKeys.existingSecretKey }}{{ else }}root-keys{{ end }}
{{- end }}

{{/* LND is configured when its socket is set; its credentials come from existingSecret or the chart's. */}}
{{- define "plannt.lndSecret" -}}
{{- default (include "plannt.fullname" .) .Values.lnd.existingSecret }}
{{- end }}

{{- define "plannt.lndHasCert" -}}
{{- if .Values.lnd.existingSecret }}{{ if .Values.lnd.existingSecretCertKey }}true{{ end }}{{ else if .Values.lnd.tlsCert }}true{{ end }}
{{- end }}

{{/* Sentinel and Cluster are configured by their nodes; the URL is for a single Redis only. */}}
{{- define "plannt.redisByNodes" -}}
{{- $r := default dict .Values.config.spent_set.redis }}
{{- if or $r.sentinels $r.cluster_nodes }}true{{ end }}
{{- end }}

{{- define "plannt.redisUrlFromSecret" -}}
{{- if and (not (include "plannt.redisByNodes" .)) (or .Values.redis.url (and .Values.redis.existingSecret .Values.redis.existingSecretKey)) }}true{{ end }}
{{- end }}

{{/* The Sentinel/Cluster password reaches Plannt as PLANNT_REDIS_PASSWORD from a Secret, never the ConfigMap. */}}
{{- define "plannt.redisPasswordFromSecret" -}}
{{- if .Values.redis.existingSecret }}{{ if .Values.redis.existingSecretPasswordKey }}true{{ end }}{{ else if .Values.redis.password }}true{{ end }}
{{- end }}

{{/* The chart's own Secret is needed unless every secret value comes from an existing Secret. */}}
{{- define "plannt.ownSecret" -}}
{{- if or (not .Values.rootKeys.existingSecret) (and .Values.lnd.socket (not .Values.lnd.existingSecret)) (and (or .Values.redis.url .Values.redis.password) (not .Values.redis.existingSecret)) }}true{{ end }}
{{- end }}

{{/*
plannt.yaml: the user's `config` plus what the chart owns (listen addresses, LND credentials as mounted
files, gRPC TLS). Root keys and the Redis URL arrive as environment variables from Secrets.
*/}}
{{- define "plannt.configFile" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen" (dict
  "grpc" (printf "0.0.0.0:%v" .Values.ports.grpc)
  "http" (printf "0.0.0.0:%v" .Values.ports.http)
  "admin" (printf "0.0.0.0:%v" .Values.ports.metrics)) }}
{{- if .Values.lnd.socket }}
{{- $lnd := dict "socket" .Values.lnd.socket "macaroon_file" "/etc/plannt/lnd/invoice.macaroon" }}
{{- if include "plannt.lndHasCert" . }}
{{- $_ := set $lnd "cert_file" "/etc/plannt/lnd/tls.cert" }}
{{- end }}
{{- $_ := set $cfg "backend" (merge (dict "lnd" $lnd) (default dict $cfg.backend)) }}
{{- end }}
{{- if not (kindIs "invalid" .Values.workers) }}
{{- $_ := set $cfg "workers" (.Values.workers | int) }}
{{- end }}
{{- if .Values.grpcTls.existingSecret }}
{{- $tls := dict "cert_file" "/etc/plannt/tls/tls.crt" "key_file" "/etc/plannt/tls/tls.key" }}
{{- if .Values.grpcTls.clientCA }}
{{- $_ := set $tls "client_ca_file" "/etc/plannt/tls/ca.crt" }}
{{- end }}
{{- $_ := set $cfg "tls" $tls }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
