{{/*
Credentials. Each comes from an existing Secret (name + key) or from a Secret the chart generates
ONCE: on upgrade the value is read back with `lookup`, and the Secret carries
`helm.sh/resource-policy: keep`, so neither an upgrade nor an uninstall loses it. Generated values
are letters and digits (URL-safe: the app does not URL-decode DATABASE_URL / REDIS_URL).
*/}}

{{/* A generated (or kept) value, base64-encoded. Call with (list $ secretName key inlineValue length). */}}
{{- define "conduit.keptSecretValue" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $key := index . 2 -}}
{{- $inline := index . 3 -}}
{{- $len := index . 4 -}}
{{- if $inline -}}
{{- $inline | toString | b64enc -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace $name -}}
{{- if and $existing $existing.data (hasKey $existing.data $key) -}}
{{- index $existing.data $key -}}
{{- else -}}
{{- randAlphaNum (int $len) | b64enc -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* When lookup can see the cluster, check that an existing Secret and key are there. Call with (list $ secretName key valuesPath). */}}
{{- define "conduit.checkExistingSecret" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $key := index . 2 -}}
{{- $path := index . 3 -}}
{{- if not $key -}}
{{- fail (printf "conduit: %s.existingSecret is %q but no key is given: set the key of the value inside that Secret (see values.yaml next to %s.existingSecret)." $path $name $path) -}}
{{- end -}}
{{- $found := lookup "v1" "Secret" $root.Release.Namespace $name -}}
{{- if and $found (not (hasKey (default dict $found.data) $key)) -}}
{{- fail (printf "conduit: %s.existingSecret: Secret %s/%s has no key %q. Add the key to the Secret or point the key setting at the right one." $path $root.Release.Namespace $name $key) -}}
{{- end -}}
{{- end -}}

{{/* ---- master key ---- */}}
{{- define "conduit.masterKey.secretName" -}}
{{- default (include "conduit.resourceName" (list . "master-key")) .Values.masterKey.existingSecret -}}
{{- end -}}
{{- define "conduit.masterKey.secretKey" -}}
{{- .Values.masterKey.existingSecretKey -}}
{{- end -}}

{{/* ---- database ---- */}}
{{- define "conduit.database.secretName" -}}
{{- default (include "conduit.resourceName" (list . "postgres")) .Values.database.auth.existingSecret -}}
{{- end -}}
{{- define "conduit.database.secretKey" -}}
{{- if .Values.database.auth.existingSecret -}}{{ .Values.database.auth.existingSecretPasswordKey }}{{- else -}}password{{- end -}}
{{- end -}}
{{- define "conduit.database.generateSecret" -}}
{{- if and (not .Values.database.auth.existingSecret) (or .Values.database.auth.password (eq .Values.database.mode "cnpg")) -}}true{{- end -}}
{{- end -}}
{{- define "conduit.cnpg.name" -}}
{{- include "conduit.resourceName" (list . "pg") -}}
{{- end -}}
{{- define "conduit.database.host" -}}
{{- if eq .Values.database.mode "cnpg" -}}
{{- printf "%s-rw.%s.svc" (include "conduit.cnpg.name" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.database.external.host -}}
{{- end -}}
{{- end -}}
{{- define "conduit.database.port" -}}
{{- if eq .Values.database.mode "cnpg" -}}5432{{- else -}}{{ .Values.database.external.port }}{{- end -}}
{{- end -}}

{{/* ---- redis ---- */}}
{{- define "conduit.redis.hasAuth" -}}
{{- if or (eq .Values.redis.mode "standalone") .Values.redis.auth.password .Values.redis.auth.existingSecret -}}true{{- end -}}
{{- end -}}
{{- define "conduit.redis.secretName" -}}
{{- default (include "conduit.resourceName" (list . "redis")) .Values.redis.auth.existingSecret -}}
{{- end -}}
{{- define "conduit.redis.secretKey" -}}
{{- if .Values.redis.auth.existingSecret -}}{{ .Values.redis.auth.existingSecretPasswordKey }}{{- else -}}redis-password{{- end -}}
{{- end -}}
{{- define "conduit.redis.generateSecret" -}}
{{- if and (not .Values.redis.auth.existingSecret) (or .Values.redis.auth.password (eq .Values.redis.mode "standalone")) -}}true{{- end -}}
{{- end -}}
{{/* redis.external.url, when set, replaces host, port, username and tls. */}}
{{- define "conduit.redis.externalUrl" -}}
{{- $u := urlParse .Values.redis.external.url -}}
{{- $hostport := splitList ":" $u.host -}}
{{- dict "scheme" $u.scheme "host" (first $hostport) "port" (ternary (last $hostport) "6379" (gt (len $hostport) 1)) "user" $u.userinfo | toJson -}}
{{- end -}}
{{- define "conduit.redis.host" -}}
{{- if eq .Values.redis.mode "standalone" -}}
{{- printf "%s.%s.svc" (include "conduit.resourceName" (list . "redis")) .Release.Namespace -}}
{{- else if .Values.redis.external.url -}}
{{- (include "conduit.redis.externalUrl" . | fromJson).host -}}
{{- else -}}
{{- .Values.redis.external.host -}}
{{- end -}}
{{- end -}}
{{- define "conduit.redis.port" -}}
{{- if eq .Values.redis.mode "standalone" -}}6379{{- else if .Values.redis.external.url -}}{{ (include "conduit.redis.externalUrl" . | fromJson).port }}{{- else -}}{{ .Values.redis.external.port }}{{- end -}}
{{- end -}}
{{- define "conduit.redis.scheme" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.url -}}{{ (include "conduit.redis.externalUrl" . | fromJson).scheme }}{{- else if and (eq .Values.redis.mode "external") .Values.redis.external.tls -}}rediss{{- else -}}redis{{- end -}}
{{- end -}}
{{- define "conduit.redis.user" -}}
{{- if and (eq .Values.redis.mode "external") .Values.redis.external.url -}}{{ default "default" (include "conduit.redis.externalUrl" . | fromJson).user }}{{- else if and (eq .Values.redis.mode "external") .Values.redis.external.username -}}{{ .Values.redis.external.username }}{{- else -}}default{{- end -}}
{{- end -}}

{{/* ---- rabbitmq ---- */}}
{{- define "conduit.rabbitmq.clusterName" -}}
{{- include "conduit.resourceName" (list . "rabbitmq") -}}
{{- end -}}
{{- define "conduit.rabbitmq.secretName" -}}
{{- if eq .Values.rabbitmq.mode "operator" -}}
{{- printf "%s-default-user" (include "conduit.rabbitmq.clusterName" .) -}}
{{- else -}}
{{- default (include "conduit.resourceName" (list . "rabbitmq")) .Values.rabbitmq.auth.existingSecret -}}
{{- end -}}
{{- end -}}
{{- define "conduit.rabbitmq.passwordKey" -}}
{{- if eq .Values.rabbitmq.mode "operator" -}}password{{- else if .Values.rabbitmq.auth.existingSecret -}}{{ .Values.rabbitmq.auth.existingSecretPasswordKey }}{{- else -}}rabbitmq-password{{- end -}}
{{- end -}}
{{- define "conduit.rabbitmq.host" -}}
{{- if eq .Values.rabbitmq.mode "operator" -}}
{{- printf "%s.%s.svc" (include "conduit.rabbitmq.clusterName" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.rabbitmq.external.host -}}
{{- end -}}
{{- end -}}
{{- define "conduit.rabbitmq.port" -}}
{{- if eq .Values.rabbitmq.mode "operator" -}}5672{{- else -}}{{ .Values.rabbitmq.external.port }}{{- end -}}
{{- end -}}

{{/*
Secret-bearing environment of API and Admin. Passwords come from Secrets through valueFrom;
DATABASE_URL and REDIS_URL reference them with Kubernetes' $(VAR) expansion, so the pod spec and
every ConfigMap hold only references. Call with (list $ "api"|"admin").
*/}}
{{- define "conduit.backendSecretEnv" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $v := $root.Values -}}
{{- $pool := index $v.database.pool $component -}}
- name: CONDUIT_API_TO_API_BACKEND_AUTH_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "conduit.masterKey.secretName" $root }}
      key: {{ include "conduit.masterKey.secretKey" $root }}
- name: CONDUIT_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "conduit.database.secretName" $root }}
      key: {{ include "conduit.database.secretKey" $root }}
{{- $query := printf "Pooling=true&MinPoolSize=%v&MaxPoolSize=%v" $pool.minPoolSize $pool.maxPoolSize }}
{{- if and (eq $v.database.mode "external") $v.database.external.sslMode }}
{{- $query = printf "%s&SslMode=%s" $query $v.database.external.sslMode }}
{{- end }}
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(CONDUIT_DATABASE_PASSWORD)@%s:%v/%s?%s" $v.database.auth.username (include "conduit.database.host" $root) (include "conduit.database.port" $root) $v.database.name $query | quote }}
{{- if ne $v.redis.mode "none" }}
{{- $scheme := include "conduit.redis.scheme" $root }}
{{- if eq (include "conduit.redis.hasAuth" $root) "true" }}
- name: CONDUIT_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "conduit.redis.secretName" $root }}
      key: {{ include "conduit.redis.secretKey" $root }}
{{- $user := include "conduit.redis.user" $root }}
- name: REDIS_URL
  value: {{ printf "%s://%s:$(CONDUIT_REDIS_PASSWORD)@%s:%v" $scheme $user (include "conduit.redis.host" $root) (include "conduit.redis.port" $root) | quote }}
{{- else }}
- name: REDIS_URL
  value: {{ printf "%s://%s:%v" $scheme (include "conduit.redis.host" $root) (include "conduit.redis.port" $root) | quote }}
{{- end }}
{{- end }}
{{- if ne $v.rabbitmq.mode "none" }}
{{- if eq $v.rabbitmq.mode "operator" }}
- name: CONDUITLLM__RABBITMQ__USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "conduit.rabbitmq.secretName" $root }}
      key: username
{{- end }}
- name: CONDUITLLM__RABBITMQ__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "conduit.rabbitmq.secretName" $root }}
      key: {{ include "conduit.rabbitmq.passwordKey" $root }}
{{- end }}
{{- if eq $v.mediaStorage.type "s3" }}
- name: CONDUIT_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $v.mediaStorage.s3.existingSecret }}
      key: {{ $v.mediaStorage.s3.accessKeyIdKey }}
- name: CONDUIT_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $v.mediaStorage.s3.existingSecret }}
      key: {{ $v.mediaStorage.s3.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{/* Secret-bearing environment of the WebUI. */}}
{{- define "conduit.webuiSecretEnv" -}}
- name: CONDUIT_API_TO_API_BACKEND_AUTH_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "conduit.masterKey.secretName" . }}
      key: {{ include "conduit.masterKey.secretKey" . }}
{{- if .Values.webui.clerk.existingSecret }}
- name: CLERK_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.webui.clerk.existingSecret }}
      key: {{ .Values.webui.clerk.secretKeyKey }}
{{- end }}
{{- end -}}

{{/* Fingerprint of where credentials come from (not their values): rolls pods when a reference changes. */}}
{{- define "conduit.secretRefsChecksum" -}}
{{- $v := .Values -}}
{{- $refs := list $v.masterKey (omit $v.database.auth "password") (omit $v.redis.auth "password") (omit $v.rabbitmq.auth "password") $v.mediaStorage.s3 $v.webui.clerk $v.database.mode $v.redis.mode $v.rabbitmq.mode -}}
{{- toJson $refs | sha256sum -}}
{{- end -}}

{{/*
libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD from the Secret, PGSSLMODE) for
jobs that talk to the application database with the PostgreSQL client tools, e.g. backups.
*/}}
{{- define "conduit.database.libpqEnv" -}}
- name: PGHOST
  value: {{ include "conduit.database.host" . | quote }}
- name: PGPORT
  value: {{ include "conduit.database.port" . | quote }}
- name: PGDATABASE
  value: {{ .Values.database.name | quote }}
- name: PGUSER
  value: {{ .Values.database.auth.username | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "conduit.database.secretName" . }}
      key: {{ include "conduit.database.secretKey" . }}
{{- if and (eq .Values.database.mode "external") .Values.database.external.sslMode }}
- name: PGSSLMODE
  value: {{ .Values.database.external.sslMode | lower | replace "verifyca" "verify-ca" | replace "verifyfull" "verify-full" | quote }}
{{- end }}
{{- end -}}

{{/*
Shell script (busybox sh) of the RabbitMQ init container that installs the delayed-message-exchange
plugin: download to a temporary name, refuse a file whose SHA-256 differs, then move it into place,
so the broker never sees a partial or unverified plugin. Reads PLUGIN_URL, PLUGIN_FILE, PLUGIN_SHA256
and PLUGIN_DIR from its environment.
*/}}
{{- define "conduit.rabbitmq.pluginInstallScript" -}}
set -eu
part="$PLUGIN_DIR/.$PLUGIN_FILE.part"
rm -f "$part"
if ! timeout 300 wget -q -O "$part" "$PLUGIN_URL"; then rm -f "$part"; echo "cannot download $PLUGIN_URL" >&2; exit 1; fi
if ! echo "$PLUGIN_SHA256  $part" | sha256sum -c -s -; then rm -f "$part"; echo "SHA-256 of $PLUGIN_URL is not $PLUGIN_SHA256: refused" >&2; exit 1; fi
mv "$part" "$PLUGIN_DIR/$PLUGIN_FILE"
echo "installed $PLUGIN_FILE"
{{- end -}}
