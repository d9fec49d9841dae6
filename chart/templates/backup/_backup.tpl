{{/*
In-cluster backups (values key `backup`). The dump job (CronJob in `external` mode, pre-upgrade hook
in both modes) runs files/backup/backup.sh twice in one pod: `dump` in the official postgres image
(init container) into an emptyDir, then `upload` in the rclone image. Secrets reach the containers
through env valueFrom only. "conduit.database.libpqEnv" (templates/_secrets.tpl) gives the PG* env.
*/}}

{{/* Render-time checks of the backup values; every message names the key to set. */}}
{{- define "conduit.backup.validate" -}}
{{- $b := .Values.backup -}}
{{- if $b.enabled -}}
{{- if not $b.destination.url -}}
{{- fail "conduit: backup.enabled is true but backup.destination.url is empty. Set backup.destination.url to s3://bucket/prefix (the bucket must exist), or set backup.enabled=false." -}}
{{- end -}}
{{- if not (regexMatch "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$" $b.destination.url) -}}
{{- fail (printf "conduit: backup.destination.url %q is not an S3 URL. Set it to s3://bucket/prefix." $b.destination.url) -}}
{{- end -}}
{{- if not $b.destination.existingSecret -}}
{{- fail "conduit: backup.enabled is true but backup.destination.existingSecret is empty. Create a Secret with the S3 access key ID and secret access key (keys backup.destination.accessKeyIdKey and backup.destination.secretAccessKeyKey) and set backup.destination.existingSecret to its name." -}}
{{- end -}}
{{- if not (regexMatch "^(@(hourly|daily|weekly|monthly|yearly|annually|midnight)|[0-9*/,-]+ [0-9*/,-]+ [0-9*/,?LW-]+ [0-9A-Za-z*/,-]+ [0-9A-Za-z*/,?L#-]+)$" (toString $b.schedule)) -}}
{{- fail (printf "conduit: backup.schedule %q is not a 5-field cron expression (minute hour day-of-month month day-of-week) or @hourly/@daily/@weekly/@monthly. Example: \"17 3 * * *\" (03:17 every day)." (toString $b.schedule)) -}}
{{- end -}}
{{- if not (regexMatch "^[1-9][0-9]*[dwm]$" (toString $b.retention)) -}}
{{- fail (printf "conduit: backup.retention %q must be a number followed by d, w or m (days, weeks, months), e.g. 30d." (toString $b.retention)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $b.preUpgrade.mode "always") (not $b.enabled) -}}
{{- fail "conduit: backup.preUpgrade.mode is always but backup.enabled is false; the pre-upgrade backup needs a destination. Set backup.enabled=true with backup.destination.url and backup.destination.existingSecret, or backup.preUpgrade.mode=auto." -}}
{{- end -}}
{{- end -}}

{{/* "true" when the pre-upgrade hook renders. */}}
{{- define "conduit.backup.preUpgradeEnabled" -}}
{{- $b := .Values.backup -}}
{{- if and $b.enabled (or (eq $b.preUpgrade.mode "always") (and (eq $b.preUpgrade.mode "auto") (eq .Values.global.environment "production"))) -}}true{{- end -}}
{{- end -}}

{{/* Destination URL without a trailing slash, plus a sub-folder. Call with (list $ "dumps"). */}}
{{- define "conduit.backup.dest" -}}
{{- $root := index . 0 -}}
{{- printf "%s/%s" (trimSuffix "/" $root.Values.backup.destination.url) (index . 1) -}}
{{- end -}}

{{/* TCP port of the S3 endpoint (its explicit port, or 443 / 80 by scheme; 443 for AWS). */}}
{{- define "conduit.backup.s3Port" -}}
{{- $e := .Values.backup.destination.endpoint -}}
{{- if not $e -}}443
{{- else -}}
{{- $u := urlParse $e -}}
{{- $hp := splitList ":" $u.host -}}
{{- if gt (len $hp) 1 -}}{{ last $hp }}{{- else if eq $u.scheme "http" -}}80{{- else -}}443{{- end -}}
{{- end -}}
{{- end -}}

{{/* Restricted container security context. Call with the UID. */}}
{{- define "conduit.backup.containerSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: 999
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
Pod spec of the dump job. Call with (list $ "cronjob"|"pre-upgrade" configMapName).
The id tag and manifest kind mark pre-upgrade dumps; they go to the same destination folder so
`backup.ts list` shows them next to the scheduled ones.
*/}}
{{- define "conduit.backup.podSpec" -}}
{{- $root := index . 0 -}}
{{- $kind := index . 1 -}}
{{- $cm := index . 2 -}}
{{- $b := $root.Values.backup -}}
{{- $j := $b.job -}}
restartPolicy: Never
automountServiceAccountToken: false
enableServiceLinks: false
{{- include "conduit.imagePullSecrets" $root }}
securityContext:
  runAsNonRoot: true
  runAsUser: 999
  runAsGroup: 999
  fsGroup: 999
  seccompProfile:
    type: RuntimeDefault
initContainers:
  - name: dump
    image: {{ include "conduit.image" (list $root $j.postgresImage) }}
    imagePullPolicy: {{ $j.postgresImage.pullPolicy }}
    command: ["/bin/sh", "/scripts/backup.sh", "dump"]
    env:
      {{- include "conduit.database.libpqEnv" $root | nindent 6 }}
      - name: BACKUP_DIR
        value: /backup
      - name: BACKUP_RELEASE
        value: {{ $root.Release.Name | quote }}
      - name: BACKUP_NAMESPACE
        value: {{ $root.Release.Namespace | quote }}
      - name: BACKUP_REVISION
        {{- /* A pre-upgrade dump holds the data of the revision being replaced. */}}
        value: {{ ternary (sub $root.Release.Revision 1) $root.Release.Revision (eq $kind "pre-upgrade") | quote }}
      - name: BACKUP_KIND
        value: {{ $kind }}
      {{- if eq $kind "pre-upgrade" }}
      - name: BACKUP_ID_TAG
        value: preupgrade
      {{- end }}
      - name: HOME
        value: /tmp
    resources:
      {{- toYaml $j.resources | nindent 6 }}
    securityContext:
      {{- include "conduit.backup.containerSecurity" 999 | nindent 6 }}
    volumeMounts:
      - {name: scripts, mountPath: /scripts, readOnly: true}
      - {name: backup, mountPath: /backup}
      - {name: tmp, mountPath: /tmp}
containers:
  - name: upload
    image: {{ include "conduit.image" (list $root $j.rcloneImage) }}
    imagePullPolicy: {{ $j.rcloneImage.pullPolicy }}
    command: ["/bin/sh", "/scripts/backup.sh", "upload"]
    env:
      - name: BACKUP_DIR
        value: /backup
      - name: BACKUP_DEST
        value: {{ include "conduit.backup.dest" (list $root "dumps") | quote }}
      - name: AWS_ACCESS_KEY_ID
        valueFrom:
          secretKeyRef:
            name: {{ $b.destination.existingSecret }}
            key: {{ $b.destination.accessKeyIdKey }}
      - name: AWS_SECRET_ACCESS_KEY
        valueFrom:
          secretKeyRef:
            name: {{ $b.destination.existingSecret }}
            key: {{ $b.destination.secretAccessKeyKey }}
      - name: AWS_ENDPOINT_URL
        value: {{ $b.destination.endpoint | quote }}
      - name: AWS_REGION
        value: {{ $b.destination.region | quote }}
      - name: HOME
        value: /tmp
      - name: XDG_CACHE_HOME
        value: /tmp/.cache
    resources:
      {{- toYaml $j.resources | nindent 6 }}
    securityContext:
      {{- include "conduit.backup.containerSecurity" $j.rcloneUser | nindent 6 }}
    volumeMounts:
      - {name: scripts, mountPath: /scripts, readOnly: true}
      - {name: backup, mountPath: /backup, readOnly: true}
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: scripts
    configMap:
      name: {{ $cm }}
      defaultMode: 365 # 0555 (decimal: YAML 1.1 and 1.2 parsers agree)
  - name: backup
    emptyDir:
      sizeLimit: {{ $j.scratchSize }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end -}}

{{/* data of the script ConfigMap: the files as they are (no tpl). */}}
{{- define "conduit.backup.scriptData" -}}
backup.sh: |-
  {{- .Files.Get "files/backup/backup.sh" | nindent 2 }}
table-stats.sql: |-
  {{- .Files.Get "files/backup/table-stats.sql" | nindent 2 }}
{{- end -}}

{{/*
spec.backup of the CloudNativePG Cluster: the in-tree barmanObjectStore of the pinned CRD
(v1.29.0). CloudNativePG recommends its Barman Cloud plugin for new setups; that needs a separately
installed plugin and its ObjectStore CRD, so the chart keeps the built-in integration for now.
*/}}
{{- define "conduit.backup.cnpgClusterBackup" -}}
{{- $b := .Values.backup -}}
retentionPolicy: {{ $b.retention | quote }}
target: {{ $b.cnpg.target }}
barmanObjectStore:
  destinationPath: {{ include "conduit.backup.dest" (list . "cnpg") | quote }}
  {{- with $b.destination.endpoint }}
  endpointURL: {{ . | quote }}
  {{- end }}
  s3Credentials:
    accessKeyId:
      name: {{ $b.destination.existingSecret }}
      key: {{ $b.destination.accessKeyIdKey }}
    secretAccessKey:
      name: {{ $b.destination.existingSecret }}
      key: {{ $b.destination.secretAccessKeyKey }}
  wal:
    compression: {{ $b.cnpg.compression }}
  data:
    compression: {{ $b.cnpg.compression }}
{{- end -}}
