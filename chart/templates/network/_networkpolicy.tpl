{{/* Building blocks of the NetworkPolicies. */}}
{{- define "conduit.np.from" -}}
{{- $root := index . 0 -}}
- podSelector:
    matchLabels:
      {{- include "conduit.selectorLabels" (list $root (index . 1)) | nindent 6 }}
{{- end -}}
{{- define "conduit.np.dns" -}}
- to:
    - namespaceSelector:
        {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 8 }}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}
{{- define "conduit.np.internet" -}}
- to:
    {{- range .Values.networkPolicy.apiEgress.cidrs }}
    - ipBlock:
        cidr: {{ . }}
        {{- with $.Values.networkPolicy.apiEgress.except }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- end }}
  ports:
    {{- range .Values.networkPolicy.apiEgress.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}
{{- /* Egress to a data service outside the cluster: its CIDRs, on the port the app connects to. Call with (list CIDRS PORT). */}}
{{- define "conduit.np.external" -}}
- to:
    {{- range (index . 0) }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ index . 1 }}}
{{- end -}}
