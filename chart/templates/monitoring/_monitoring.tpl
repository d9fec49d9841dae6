{{/*
Shared parts of the chart's ServiceMonitors and PodMonitors.

Every target gets a stable `job` label, conduit-<component> (conduit-api, conduit-admin,
conduit-redis, conduit-rabbitmq, conduit-postgresql), whatever the release name or
fullnameOverride: the shipped alert rules and dashboards select on it. Two releases in one
namespace share these job names; `namespace`, `service` and `pod` still tell them apart.
*/}}
{{- define "conduit.monitoring.jobName" -}}
conduit-{{ . }}
{{- end -}}

{{/* Endpoint relabelings setting the stable job label. Call with the component name. */}}
{{- define "conduit.monitoring.relabelings" -}}
relabelings:
  - action: replace
    targetLabel: job
    replacement: {{ include "conduit.monitoring.jobName" . }}
{{- end -}}

{{/* metadata.labels of a monitor: the component's labels plus monitoring.serviceMonitor.additionalLabels. Call with (list $ "redis"). */}}
{{- define "conduit.monitoring.labels" -}}
{{- $root := index . 0 -}}
{{ include "conduit.labels" . }}
{{- with $root.Values.monitoring.serviceMonitor.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
