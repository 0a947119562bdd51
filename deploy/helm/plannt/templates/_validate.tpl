{{/*
Rules between values that values.schema.json cannot state (JSON schema cannot compare two fields). Included
once, from deployment.yaml; each failure names the values to change.
*/}}
{{- define "plannt.validate" -}}
{{- $v := .Values }}
{{- if and (eq (toString $v.readinessProbe.type) "grpc") $v.grpcTls.existingSecret }}
{{- fail "readinessProbe.type=grpc with grpcTls.existingSecret: the kubelet probes gRPC in plaintext, so the probe would never succeed against a TLS port. Use readinessProbe.type=http (GET /readyz on the admin port), which reports the same readiness." }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%v) is greater than autoscaling.maxReplicas (%v)" $v.autoscaling.minReplicas $v.autoscaling.maxReplicas) }}
{{- end }}
{{- $graceMs := int (default 10000 $v.config.shutdown_grace_ms) }}
{{- $drain := int (default 5 $v.config.drain_seconds) }}
{{- $needed := add (int $v.preStopSleepSeconds) $drain (div (add $graceMs 999) 1000) }}
{{- if lt (int $v.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) is shorter than preStopSleepSeconds (%v) + config.drain_seconds (%v) + config.shutdown_grace_ms (%v ms): the kubelet would kill Plannt mid-drain. Set it to at least %v." $v.terminationGracePeriodSeconds $v.preStopSleepSeconds $drain $graceMs $needed) }}
{{- end }}
{{- if $v.podDisruptionBudget.enabled }}
{{- $min := $v.podDisruptionBudget.minAvailable }}
{{- $floor := ternary $v.autoscaling.minReplicas $v.replicaCount $v.autoscaling.enabled }}
{{- if and (not (kindIs "invalid" $min)) (not (kindIs "string" $min)) (ge (int $min) (int $floor)) }}
{{- fail (printf "podDisruptionBudget.minAvailable (%v) is not below the replica floor (%v): no pod could ever be evicted, so node drains would hang. Lower it or use maxUnavailable." $min $floor) }}
{{- end }}
{{- if and (kindIs "invalid" $min) (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable) }}
{{- fail "podDisruptionBudget is enabled without maxUnavailable or minAvailable" }}
{{- end }}
{{- end }}
{{- if and (not $v.rootKeys.existingSecret) (not $v.rootKeys.keys) }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "plannt.fullname" .) }}
{{- $cluster := lookup "v1" "ServiceAccount" .Release.Namespace "default" }}
{{- if and (not $existing) (not $cluster) }}
{{- fail "no root key: set rootKeys.existingSecret (recommended) or rootKeys.keys. This render cannot see the cluster (helm template, Argo CD, --dry-run), so a generated key would change on every render and invalidate every token sold. `helm install` against a cluster generates one and keeps it." }}
{{- end }}
{{- end }}
{{- end }}
