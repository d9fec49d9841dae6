{{/* Names, labels and images shared by every template. */}}

{{- define "conduit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "conduit.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", kept within 63 characters. Call with (list $ "suffix"). */}}
{{- define "conduit.resourceName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "conduit.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{- define "conduit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component. Call with (list $ "api"). */}}
{{- define "conduit.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "conduit.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Recommended labels of one component. Call with (list $ "api"). */}}
{{- define "conduit.labels" -}}
{{- $root := index . 0 -}}
{{ include "conduit.selectorLabels" . }}
app.kubernetes.io/part-of: conduit
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ include "conduit.chart" $root }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations block (leading newline, indented 2) with commonAnnotations merged into the given map; nothing when empty. Call with (list $ dict). */}}
{{- define "conduit.annotations" -}}
{{- $root := index . 0 -}}
{{- $all := merge (deepCopy (index . 1)) (deepCopy $root.Values.commonAnnotations) -}}
{{- with $all }}
{{ printf "annotations:\n%s" (toYaml . | indent 2) | indent 2 }}
{{- end }}
{{- end -}}

{{/* Full image reference. Call with (list $ imageValues). Digest wins over tag; empty tag = appVersion. */}}
{{- define "conduit.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $registry := default $img.registry $root.Values.global.imageRegistry -}}
{{- $ref := ternary (printf "%s/%s" $registry $img.repository) $img.repository (ne $registry "") -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $ref $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default $root.Chart.AppVersion $img.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets of a pod: global ones plus an optional extra list. Call with $ or (list $ extraList). */}}
{{- define "conduit.imagePullSecrets" -}}
{{- $root := . -}}
{{- $extra := list -}}
{{- if kindIs "slice" . -}}{{- $root = index . 0 -}}{{- $extra = index . 1 | default list -}}{{- end -}}
{{- with concat $root.Values.global.imagePullSecrets $extra | uniq }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Name of a component's ServiceAccount. Call with (list $ "api"). */}}
{{- define "conduit.serviceAccountName" -}}
{{- $root := index . 0 -}}
{{- $c := index $root.Values (index . 1) -}}
{{- if $c.serviceAccount.create -}}
{{- default (include "conduit.resourceName" (list $root (index . 1))) $c.serviceAccount.name -}}
{{- else -}}
{{- default "default" $c.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* In-cluster base URLs. */}}
{{- define "conduit.apiUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "conduit.resourceName" (list . "api")) .Release.Namespace .Values.api.service.port -}}
{{- end -}}
{{- define "conduit.adminUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "conduit.resourceName" (list . "admin")) .Release.Namespace .Values.admin.service.port -}}
{{- end -}}

{{/* Replica count a component may reach (HPA max or fixed count). Call with component values. */}}
{{- define "conduit.maxReplicas" -}}
{{- if .autoscaling.enabled -}}{{ .autoscaling.maxReplicas }}{{- else -}}{{ .replicaCount }}{{- end -}}
{{- end -}}

{{/* Pods a rolling update adds on top (maxSurge as a number or a percentage, rounded up like Kubernetes). */}}
{{- define "conduit.surgePods" -}}
{{- $max := int (include "conduit.maxReplicas" .) -}}
{{- $s := toString .updateStrategy.maxSurge -}}
{{- if hasSuffix "%" $s -}}
{{- $pct := int (trimSuffix "%" $s) -}}
{{- div (add (mul $max $pct) 99) 100 -}}
{{- else -}}
{{- int $s -}}
{{- end -}}
{{- end -}}
