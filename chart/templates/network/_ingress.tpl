{{/* Annotations of Ingresses that carry API traffic (streams, SignalR, uploads). Call with (list $ component issuer?): only one Ingress per TLS Secret may ask cert-manager for it. */}}
{{- define "conduit.ingressAnnotations" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $issuer := index . 2 -}}
{{- $i := $root.Values.ingress -}}
{{- $a := dict -}}
{{- if and $issuer $i.tls.enabled -}}{{- with $i.tls.clusterIssuer -}}{{- $_ := set $a "cert-manager.io/cluster-issuer" . -}}{{- end -}}{{- end -}}
{{- if $i.nginx -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/proxy-buffering" "off" -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/proxy-request-buffering" "off" -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/proxy-read-timeout" (toString $i.proxyTimeoutSeconds) -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/proxy-send-timeout" (toString $i.proxyTimeoutSeconds) -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/proxy-body-size" $i.proxyBodySize -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/proxy-http-version" "1.1" -}}
{{- if ne $c "webui" -}}
{{- $cv := index $root.Values $c -}}
{{- if or $cv.autoscaling.enabled (gt (int $cv.replicaCount) 1) -}}
{{- /* SignalR negotiate tokens are per pod: pin /hubs clients to one pod. The cookie is scoped to /hubs. */}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/affinity" "cookie" -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/affinity-mode" "persistent" -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/session-cookie-name" (printf "conduit-%s-affinity" $c) -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/session-cookie-path" "/hubs" -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/session-cookie-samesite" "Lax" -}}
{{- $_ := set $a "nginx.ingress.kubernetes.io/session-cookie-secure" "true" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml (merge $a (deepCopy $i.annotations)) -}}
{{- end -}}

{{/* One Ingress. Call with (dict "root" $ "name" suffix "component" labelComponent "backend" component "host" host "paths" list "annotationsFor" component). */}}
{{- define "conduit.ingress" -}}
{{- $root := .root -}}
{{- $i := $root.Values.ingress -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "conduit.resourceName" (list $root .name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "conduit.labels" (list $root .component) | nindent 4 }}
  {{- include "conduit.annotations" (list $root (include "conduit.ingressAnnotations" (list $root .annotationsFor (not .sharesTls)) | fromYaml)) }}
spec:
  {{- with $i.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- if $i.tls.enabled }}
  tls:
    - hosts: [{{ .host | quote }}]
      secretName: {{ include "conduit.resourceName" (list $root (printf "%s-tls" .component)) }}
  {{- end }}
  rules:
    - host: {{ .host | quote }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ . }}
            pathType: Prefix
            backend:
              service:
                name: {{ include "conduit.resourceName" (list $root $.backend) }}
                port:
                  name: http
          {{- end }}
{{- end -}}
