{{/*
The three application components (api, admin, webui) share one shape of values and are rendered by
the helpers below; a component's own template file only calls them with (list $ "<component>").
What differs per component is in "conduit.componentSpec".
*/}}

{{- define "conduit.componentSpec" -}}
{{- $c := . -}}
{{- if eq $c "webui" -}}
port: 3000
volumes:
  - {name: tmp, mountPath: /tmp}
  - {name: next-cache, mountPath: /app/.next/cache}
{{- else -}}
port: 8080
volumes:
  - {name: tmp, mountPath: /tmp}
  - {name: home, mountPath: /home/appuser}
{{- end -}}
{{- end -}}

{{/* Non-secret environment of a component (goes into its ConfigMap). Call with (list $ component). */}}
{{- define "conduit.configEnv" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $v := $root.Values -}}
{{- $env := dict -}}
{{- if or (eq $c "api") (eq $c "admin") -}}
{{- $_ := set $env "ASPNETCORE_ENVIRONMENT" $v.app.aspnetcoreEnvironment -}}
{{- if $v.app.skipDatabaseInit -}}{{- $_ := set $env "CONDUIT_SKIP_DATABASE_INIT" "true" -}}{{- end -}}
{{- /* The .NET console logger reads Logging:* from the environment (both APIs build their
  configuration from environment variables); `simple` is its default and needs nothing. */ -}}
{{- if eq $v.logging.format "json" -}}
{{- $_ := set $env "Logging__Console__FormatterName" "json" -}}
{{- $_ := set $env "Logging__Console__FormatterOptions__TimestampFormat" "yyyy-MM-ddTHH:mm:ss.fffzzz" -}}
{{- $_ := set $env "Logging__Console__FormatterOptions__UseUtcTimestamp" "true" -}}
{{- end -}}
{{- range $category, $level := $v.logging.levels -}}
{{- if $level -}}{{- $_ := set $env (printf "Logging__LogLevel__%s" $category) $level -}}{{- end -}}
{{- end -}}
{{- if ne $v.rabbitmq.mode "none" -}}
{{- $_ := set $env "CONDUITLLM__RABBITMQ__HOST" (include "conduit.rabbitmq.host" $root) -}}
{{- $_ := set $env "CONDUITLLM__RABBITMQ__PORT" (include "conduit.rabbitmq.port" $root) -}}
{{- $_ := set $env "CONDUITLLM__RABBITMQ__VHOST" $v.rabbitmq.vhost -}}
{{- if ne $v.rabbitmq.mode "operator" -}}
{{- $_ := set $env "CONDUITLLM__RABBITMQ__USERNAME" $v.rabbitmq.auth.username -}}
{{- end -}}
{{- end -}}
{{- if eq $v.mediaStorage.type "s3" -}}
{{- $_ := set $env "CONDUIT_MEDIA_STORAGE_TYPE" "S3" -}}
{{- $_ := set $env "CONDUIT_S3_ENDPOINT" $v.mediaStorage.s3.endpoint -}}
{{- $_ := set $env "CONDUIT_S3_BUCKET_NAME" $v.mediaStorage.s3.bucketName -}}
{{- $_ := set $env "CONDUIT_S3_REGION" $v.mediaStorage.s3.region -}}
{{- with $v.mediaStorage.s3.publicBaseUrl -}}{{- $_ := set $env "CONDUIT_S3_PUBLIC_BASE_URL" . -}}{{- end -}}
{{- end -}}
{{- if and (eq $c "admin") $v.app.disableHttpsRedirection -}}
{{- $_ := set $env "CONDUIT_ENABLE_HTTPS_REDIRECTION" "false" -}}
{{- end -}}
{{- else -}}
{{- $_ := set $env "NODE_ENV" "production" -}}
{{- $_ := set $env "PORT" "3000" -}}
{{- $_ := set $env "CONDUIT_API_BASE_URL" (include "conduit.apiUrl" $root) -}}
{{- $_ := set $env "CONDUIT_ADMIN_API_BASE_URL" (include "conduit.adminUrl" $root) -}}
{{- $_ := set $env "CONDUIT_API_EXTERNAL_URL" (include "conduit.apiExternalUrl" $root) -}}
{{- $_ := set $env "CONDUIT_ADMIN_API_EXTERNAL_URL" (include "conduit.adminExternalUrl" $root) -}}
{{- with $v.webui.clerk.publishableKey -}}{{- $_ := set $env "NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY" . -}}{{- end -}}
{{- end -}}
{{- range $k, $val := (index $v $c).env -}}
{{- $_ := set $env $k (toString $val) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* Browser-facing URLs the WebUI hands to browsers. */}}
{{- define "conduit.scheme" -}}
{{- ternary "https" "http" .Values.ingress.tls.enabled -}}
{{- end -}}
{{- define "conduit.apiExternalUrl" -}}
{{- $i := .Values.ingress -}}
{{- if .Values.webui.apiExternalUrl -}}{{ .Values.webui.apiExternalUrl }}
{{- else if and (or $i.enabled .Values.gatewayApi.enabled) $i.hosts.webui -}}{{ printf "%s://%s" (include "conduit.scheme" .) $i.hosts.webui }}
{{- else if and (or $i.enabled .Values.gatewayApi.enabled) $i.hosts.api -}}{{ printf "%s://%s" (include "conduit.scheme" .) $i.hosts.api }}
{{- else -}}{{ include "conduit.apiUrl" . }}
{{- end -}}
{{- end -}}
{{- define "conduit.adminExternalUrl" -}}
{{- $i := .Values.ingress -}}
{{- if .Values.webui.adminApiExternalUrl -}}{{ .Values.webui.adminApiExternalUrl }}
{{- else if and (or $i.enabled .Values.gatewayApi.enabled) $i.hosts.admin -}}{{ printf "%s://%s" (include "conduit.scheme" .) $i.hosts.admin }}
{{- else -}}{{ include "conduit.adminUrl" . }}
{{- end -}}
{{- end -}}

{{- define "conduit.configMap" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "conduit.resourceName" (list $root (printf "%s-env" $c)) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "conduit.labels" (list $root $c) | nindent 4 }}
  {{- include "conduit.annotations" (list $root dict) }}
data:
  {{- include "conduit.configEnv" (list $root $c) | nindent 2 }}
{{- end -}}

{{/* The shared pod template. Call with (list $ component). */}}
{{- define "conduit.podTemplate" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $v := index $root.Values $c -}}
{{- $spec := include "conduit.componentSpec" $c | fromYaml -}}
{{- $podAnnotations := dict "checksum/config" (include "conduit.configEnv" (list $root $c) | sha256sum) "checksum/secret-refs" (include "conduit.secretRefsChecksum" $root) -}}
{{- $podAnnotations = merge $podAnnotations (deepCopy $v.podAnnotations) -}}
metadata:
  labels:
    {{- include "conduit.labels" (list $root $c) | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- toYaml $podAnnotations | nindent 4 }}
spec:
  serviceAccountName: {{ include "conduit.serviceAccountName" (list $root $c) }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with (include "conduit.imagePullSecrets" (list $root $v.image.pullSecrets)) }}{{ . | nindent 2 }}{{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ $c }}
      image: {{ include "conduit.image" (list $root $v.image) | quote }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      ports:
        - name: http
          containerPort: {{ $spec.port }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "conduit.resourceName" (list $root (printf "%s-env" $c)) }}
      env:
        {{- if eq $c "webui" }}
        {{- include "conduit.webuiSecretEnv" $root | nindent 8 }}
        {{- else }}
        {{- include "conduit.backendSecretEnv" (list $root $c) | nindent 8 }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet: {path: {{ $v.probes.startup.path }}, port: http}
        periodSeconds: {{ $v.probes.startup.periodSeconds }}
        failureThreshold: {{ $v.probes.startup.failureThreshold }}
        timeoutSeconds: {{ $v.probes.startup.timeoutSeconds }}
      livenessProbe:
        httpGet: {path: {{ $v.probes.liveness.path }}, port: http}
        periodSeconds: {{ $v.probes.liveness.periodSeconds }}
        failureThreshold: {{ $v.probes.liveness.failureThreshold }}
        timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
      readinessProbe:
        httpGet: {path: {{ $v.probes.readiness.path }}, port: http}
        periodSeconds: {{ $v.probes.readiness.periodSeconds }}
        failureThreshold: {{ $v.probes.readiness.failureThreshold }}
        timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $v.preStopSleepSeconds }}
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.containerSecurityContext | nindent 8 }}
      volumeMounts:
        {{- range $spec.volumes }}
        - name: {{ .name }}
          mountPath: {{ .mountPath }}
        {{- end }}
        {{- with $v.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- range $spec.volumes }}
    - name: {{ .name }}
      emptyDir: {}
    {{- end }}
    {{- with $v.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ $v.topologySpread.zoneMaxSkew }}
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "conduit.selectorLabels" (list $root $c) | nindent 10 }}
      matchLabelKeys: [pod-template-hash]
    - maxSkew: {{ $v.topologySpread.nodeMaxSkew }}
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "conduit.selectorLabels" (list $root $c) | nindent 10 }}
      matchLabelKeys: [pod-template-hash]
  {{- end }}
{{- end -}}

{{- define "conduit.deployment" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $v := index $root.Values $c -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "conduit.resourceName" (list $root $c) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "conduit.labels" (list $root $c) | nindent 4 }}
  {{- include "conduit.annotations" (list $root dict) }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "conduit.selectorLabels" (list $root $c) | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $v.updateStrategy.maxSurge }}
      maxUnavailable: {{ $v.updateStrategy.maxUnavailable }}
  template:
    {{- include "conduit.podTemplate" (list $root $c) | nindent 4 }}
{{- end -}}

{{- define "conduit.service" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $v := index $root.Values $c -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "conduit.resourceName" (list $root $c) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "conduit.labels" (list $root $c) | nindent 4 }}
  {{- include "conduit.annotations" (list $root $v.service.annotations) }}
spec:
  type: {{ $v.service.type }}
  selector:
    {{- include "conduit.selectorLabels" (list $root $c) | nindent 4 }}
  ports:
    - name: http
      port: {{ $v.service.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- define "conduit.serviceAccount" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $v := index $root.Values $c -}}
{{- if $v.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "conduit.serviceAccountName" (list $root $c) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "conduit.labels" (list $root $c) | nindent 4 }}
  {{- include "conduit.annotations" (list $root $v.serviceAccount.annotations) }}
automountServiceAccountToken: false
{{- end }}
{{- end -}}

{{- define "conduit.hpa" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $v := index $root.Values $c -}}
{{- $a := $v.autoscaling -}}
{{- if $a.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "conduit.resourceName" (list $root $c) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "conduit.labels" (list $root $c) | nindent 4 }}
  {{- include "conduit.annotations" (list $root dict) }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "conduit.resourceName" (list $root $c) }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    {{- if gt (int $a.targetCPUUtilizationPercentage) 0 }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
    {{- end }}
    {{- if gt (int $a.targetMemoryUtilizationPercentage) 0 }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ $a.targetMemoryUtilizationPercentage }}
    {{- end }}
    {{- if $a.pods.enabled }}
    - type: Pods
      pods:
        metric:
          name: {{ $a.pods.metricName }}
        target:
          type: AverageValue
          averageValue: {{ $a.pods.averageValue | quote }}
    {{- end }}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: {{ $a.behavior.scaleUp.stabilizationWindowSeconds }}
      selectPolicy: Max
      policies:
        - type: Pods
          value: {{ $a.behavior.scaleUp.podsPerMinute }}
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: {{ $a.behavior.scaleDown.stabilizationWindowSeconds }}
      selectPolicy: Min
      policies:
        - type: Pods
          value: {{ $a.behavior.scaleDown.podsPerTwoMinutes }}
          periodSeconds: 120
{{- end }}
{{- end -}}

{{/*
PodDisruptionBudget. With a single replica (fixed count 1, or an HPA that may sit at 1) it allows one
disruption whatever maxUnavailable says, so a node drain is never blocked.
*/}}
{{- define "conduit.pdb" -}}
{{- $root := index . 0 -}}
{{- $c := index . 1 -}}
{{- $v := index $root.Values $c -}}
{{- if $v.pdb.enabled }}
{{- $min := ternary $v.autoscaling.minReplicas $v.replicaCount $v.autoscaling.enabled -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "conduit.resourceName" (list $root $c) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "conduit.labels" (list $root $c) | nindent 4 }}
  {{- include "conduit.annotations" (list $root dict) }}
spec:
  {{- if le (int $min) 1 }}
  maxUnavailable: 1
  {{- else }}
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  {{- end }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "conduit.selectorLabels" (list $root $c) | nindent 6 }}
{{- end }}
{{- end -}}
