{{/*
Render-time validation. Every message names the values key to change and why; the schema checks
shapes, these check combinations. Messages start with "conduit:" so tools can find them.
*/}}
{{- define "conduit.validate" -}}
{{- $v := .Values -}}

{{- /* Scaling out needs the shared services the app uses to coordinate its pods. */}}
{{- range $c := list "api" "admin" -}}
{{- $cv := index $v $c -}}
{{- if and $cv.enabled (or $cv.autoscaling.enabled (gt (int $cv.replicaCount) 1)) -}}
{{- $what := ternary (printf "%s.autoscaling.enabled=true" $c) (printf "%s.replicaCount=%v" $c $cv.replicaCount) $cv.autoscaling.enabled -}}
{{- if eq $v.rabbitmq.mode "none" -}}
{{- fail (printf "conduit: %s needs RabbitMQ, but rabbitmq.mode is none. Without RabbitMQ, Admin changes never reach API pods and API pods never invalidate each other's caches. Set rabbitmq.mode to operator or external, or run one replica (%s.replicaCount=1, %s.autoscaling.enabled=false)." $what $c $c) -}}
{{- end -}}
{{- if and (eq $c "api") (ne $v.mediaStorage.type "s3") -}}
{{- fail (printf "conduit: %s needs shared media storage, but mediaStorage.type is %s. The in-memory media store only works with one API replica (media stored by one pod are missing on the others). Set mediaStorage.type=s3 with mediaStorage.s3.endpoint, bucketName and existingSecret, or run one replica." $what $v.mediaStorage.type) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* Redis: the Core API always registers its spend batching (BatchSpendUpdateService) on the Redis connection, Admin keeps its bans and caches there. */}}
{{- if eq $v.redis.mode "none" -}}
{{- if $v.api.enabled -}}
{{- fail "conduit: the Core API requires Redis, but redis.mode is none. The API cannot start without it: its spend batching (BatchSpendUpdateService) is always registered and needs the Redis connection, whatever the replica count. Set redis.mode to standalone (the chart runs Redis) or external (with redis.external.host or redis.external.url)." -}}
{{- end -}}
{{- if $v.admin.enabled -}}
{{- fail "conduit: the Admin API requires Redis (REDIS_URL), but redis.mode is none. Set redis.mode to standalone or external, or disable the Admin API (admin.enabled=false)." -}}
{{- end -}}
{{- end -}}

{{- /* WebUI: clerkMiddleware wraps every path, /api/health included, and fails without Clerk keys; browsers call Admin directly for every write. */}}
{{- if $v.webui.enabled -}}
{{- if or (not $v.webui.clerk.publishableKey) (not $v.webui.clerk.existingSecret) -}}
{{- fail "conduit: webui.enabled is true but webui.clerk.publishableKey or webui.clerk.existingSecret is empty. The WebUI's Clerk middleware runs on every request, its health check included, so it cannot start (and its probes fail) without Clerk keys; sign-in can only be disabled in development builds. Set webui.clerk.publishableKey and webui.clerk.existingSecret (a Secret holding CLERK_SECRET_KEY under webui.clerk.secretKeyKey), or set webui.enabled=false." -}}
{{- end -}}
{{- $webuiExposed := and (or $v.ingress.enabled $v.gatewayApi.enabled) $v.ingress.hosts.webui -}}
{{- $adminReachable := or $v.webui.adminApiExternalUrl (and $v.admin.enabled (or $v.ingress.enabled $v.gatewayApi.enabled) $v.ingress.hosts.admin) -}}
{{- if and $webuiExposed (not $adminReachable) -}}
{{- fail (printf "conduit: ingress.hosts.webui exposes the WebUI (%s) but the Admin API is not exposed: browsers send the WebUI's create, edit and delete calls straight to the Admin API, and the in-cluster URL cannot be reached from a browser. Set ingress.hosts.admin (with admin.enabled=true) or webui.adminApiExternalUrl to a browser-reachable Admin URL." $v.ingress.hosts.webui) -}}
{{- end -}}
{{- end -}}

{{- /* Removed settings that would do harm. */}}
{{- if $v.monitoring.serviceMonitor.admin.enabled -}}
{{- fail "conduit: monitoring.serviceMonitor.admin.enabled was removed and must be false. That ServiceMonitor sent the master key as Authorization: Bearer, which the Admin API's security middleware rejects and counts as a failed login (5 ban the Prometheus pod's IP for 30 minutes). Set monitoring.serviceMonitor.admin.enabled=false and use monitoring.adminScrapeConfig.enabled=true (X-API-Key read from a file; see docs/monitoring.md)." -}}
{{- end -}}

{{- /* Bounds that only make sense in order. */}}
{{- range $c := list "api" "admin" "webui" -}}
{{- $a := (index $v $c).autoscaling -}}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- fail (printf "conduit: %s.autoscaling.minReplicas (%v) is above %s.autoscaling.maxReplicas (%v). Raise maxReplicas or lower minReplicas." $c $a.minReplicas $c $a.maxReplicas) -}}
{{- end -}}
{{- if and $a.enabled $a.pods.enabled (not $a.pods.metricName) -}}
{{- fail (printf "conduit: %s.autoscaling.pods.enabled is true but %s.autoscaling.pods.metricName is empty. Name a per-pod metric your metrics adapter serves for these pods (the WebUI serves no Prometheus metrics of its own), or set %s.autoscaling.pods.enabled=false." $c $c $c) -}}
{{- end -}}
{{- end -}}
{{- range $c := list "api" "admin" -}}
{{- $p := index $v.database.pool $c -}}
{{- if gt (int $p.minPoolSize) (int $p.maxPoolSize) -}}
{{- fail (printf "conduit: database.pool.%s.minPoolSize (%v) is above database.pool.%s.maxPoolSize (%v); the driver refuses such a connection string. Lower minPoolSize." $c $p.minPoolSize $c $p.maxPoolSize) -}}
{{- end -}}
{{- end -}}

{{- /* Connection budget: every pod that may exist at once, times its pool, must fit the server. */}}
{{- $budget := 0 -}}
{{- $parts := list -}}
{{- range $c := list "api" "admin" -}}
{{- $cv := index $v $c -}}
{{- if $cv.enabled -}}
{{- $pods := add (int (include "conduit.maxReplicas" $cv)) (int (include "conduit.surgePods" $cv)) -}}
{{- $pool := int (index $v.database.pool $c).maxPoolSize -}}
{{- $budget = add $budget (mul $pods $pool) -}}
{{- $parts = append $parts (printf "%s %d pods x %d" $c $pods $pool) -}}
{{- end -}}
{{- end -}}
{{- $available := sub (int $v.database.maxConnections) (int $v.database.reservedConnections) -}}
{{- if gt (int $budget) (int $available) -}}
{{- fail (printf "conduit: the database connection budget does not fit: %s = %d connections at peak (max replicas plus rolling-update surge, times database.pool.*.maxPoolSize), but database.maxConnections %v - database.reservedConnections %v leaves %d. Lower database.pool.api.maxPoolSize / database.pool.admin.maxPoolSize or the max replicas, or raise database.maxConnections (and the server's max_connections)." (join " + " $parts) (int $budget) $v.database.maxConnections $v.database.reservedConnections (int $available)) -}}
{{- end -}}

{{- /* Moving tags in production. */}}
{{- if eq $v.global.environment "production" -}}
{{- range $c := list "api" "admin" "webui" -}}
{{- $img := (index $v $c).image -}}
{{- if and (index $v $c).enabled (not $img.digest) (has (toString $img.tag) (list "latest" "master")) -}}
{{- fail (printf "conduit: %s.image.tag is %s, which is refused when global.environment is production: %s moves on every upstream master push, so pods of one release could run different code and a rollback would not restore the old one. Set %s.image.tag to an immutable tag (master-<7-char commit sha>, e.g. the chart's appVersion %s) or %s.image.digest (sha256:...)." $c (toString $img.tag) (toString $img.tag) $c $.Chart.AppVersion $c) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.redis.mode "standalone") (not $v.redis.standalone.image.digest) (eq (toString $v.redis.standalone.image.tag) "latest") -}}
{{- fail "conduit: redis.standalone.image.tag is latest, which is refused when global.environment is production. Pin a Redis version (e.g. 7.4.6-alpine) or a digest." -}}
{{- end -}}
{{- if and (eq $v.redis.mode "standalone") (not $v.redis.standalone.metrics.image.digest) (eq (toString $v.redis.standalone.metrics.image.tag) "latest") -}}
{{- fail "conduit: redis.standalone.metrics.image.tag is latest, which is refused when global.environment is production. Pin a redis_exporter version (e.g. v1.74.0) or a digest." -}}
{{- end -}}
{{- end -}}

{{- /* Data services: required settings per mode. */}}
{{- if eq $v.database.mode "external" -}}
{{- if not $v.database.external.host -}}
{{- fail "conduit: database.mode is external but database.external.host is empty. Set the PostgreSQL host (and database.external.port), or use database.mode=cnpg." -}}
{{- end -}}
{{- if and (not $v.database.auth.existingSecret) (not $v.database.auth.password) -}}
{{- fail "conduit: database.mode is external but no password is given. Set database.auth.existingSecret (and database.auth.existingSecretPasswordKey) to the Secret holding the password of database.auth.username." -}}
{{- end -}}
{{- end -}}
{{- if $v.database.auth.existingSecret -}}
{{- include "conduit.checkExistingSecret" (list . $v.database.auth.existingSecret $v.database.auth.existingSecretPasswordKey "database.auth") -}}
{{- end -}}
{{- if eq $v.redis.mode "external" -}}
{{- if and $v.redis.external.url $v.redis.external.host -}}
{{- fail "conduit: redis.external.url and redis.external.host are both set. Set one: the URL replaces host, port, username and tls." -}}
{{- end -}}
{{- if not (or $v.redis.external.host $v.redis.external.url) -}}
{{- fail "conduit: redis.mode is external but neither redis.external.host nor redis.external.url is set. Set the Redis host (or a redis:// URL without /db suffix: the app cannot parse it), or use redis.mode=standalone." -}}
{{- end -}}
{{- end -}}
{{- if $v.redis.auth.existingSecret -}}
{{- include "conduit.checkExistingSecret" (list . $v.redis.auth.existingSecret $v.redis.auth.existingSecretPasswordKey "redis.auth") -}}
{{- end -}}
{{- if eq $v.rabbitmq.mode "external" -}}
{{- if not $v.rabbitmq.external.host -}}
{{- fail "conduit: rabbitmq.mode is external but rabbitmq.external.host is empty. Set the broker host, or use rabbitmq.mode=operator." -}}
{{- end -}}
{{- if has (lower $v.rabbitmq.external.host) (list "localhost" "127.0.0.1" "::1") -}}
{{- fail "conduit: rabbitmq.external.host is localhost, which makes the app silently use its in-memory bus instead of RabbitMQ. Set the broker's Service or DNS name." -}}
{{- end -}}
{{- if and (not $v.rabbitmq.auth.existingSecret) (not $v.rabbitmq.auth.password) -}}
{{- fail "conduit: rabbitmq.mode is external but no password is given. Set rabbitmq.auth.existingSecret (and rabbitmq.auth.existingSecretPasswordKey) for rabbitmq.auth.username." -}}
{{- end -}}
{{- if $v.rabbitmq.auth.existingSecret -}}
{{- include "conduit.checkExistingSecret" (list . $v.rabbitmq.auth.existingSecret $v.rabbitmq.auth.existingSecretPasswordKey "rabbitmq.auth") -}}
{{- end -}}
{{- end -}}
{{- if eq $v.mediaStorage.type "s3" -}}
{{- $s3 := $v.mediaStorage.s3 -}}
{{- if or (not $s3.endpoint) (not $s3.bucketName) -}}
{{- fail "conduit: mediaStorage.type is s3 but mediaStorage.s3.endpoint or mediaStorage.s3.bucketName is empty. Set both." -}}
{{- end -}}
{{- if not $s3.existingSecret -}}
{{- fail "conduit: mediaStorage.type is s3 but mediaStorage.s3.existingSecret is empty. Create a Secret with the access key ID and secret access key and set mediaStorage.s3.existingSecret (keys: mediaStorage.s3.accessKeyIdKey, mediaStorage.s3.secretAccessKeyKey)." -}}
{{- end -}}
{{- include "conduit.checkExistingSecret" (list . $s3.existingSecret $s3.accessKeyIdKey "mediaStorage.s3") -}}
{{- include "conduit.checkExistingSecret" (list . $s3.existingSecret $s3.secretAccessKeyKey "mediaStorage.s3") -}}
{{- end -}}
{{- if $v.networkPolicy.enabled -}}
{{- range $svc := list "database" "redis" "rabbitmq" -}}
{{- if and (eq (index $v $svc).mode "external") (not (index $v.networkPolicy.externalServices $svc).cidrs) -}}
{{- fail (printf "conduit: networkPolicy.externalServices.%s.cidrs is empty while %s.mode is external and networkPolicy.enabled is true, so the API and Admin pods could not reach it. Set networkPolicy.externalServices.%s.cidrs to the service's address range (e.g. [10.20.0.0/16]) or set networkPolicy.enabled=false." $svc $svc $svc) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.gatewayApi.enabled (not $v.gatewayApi.parentRefs) -}}
{{- fail "conduit: gatewayApi.enabled is true but gatewayApi.parentRefs is empty, so the HTTPRoutes would attach to no Gateway. Set gatewayApi.parentRefs (e.g. [{name: my-gateway, namespace: gateway-system}])." -}}
{{- end -}}
{{- /* The shipped rules are plain files: series of kube-state-metrics, cert-manager and CloudNativePG carry object names only. */}}
{{- if and $v.monitoring.prometheusRule.enabled (not (contains "conduit" (include "conduit.fullname" .))) -}}
{{- fail (printf "conduit: monitoring.prometheusRule.enabled is true, but the object names (fullnameOverride %q) do not contain \"conduit\". The shipped alerts find pods, autoscalers, backup CronJobs, certificates and PostgreSQL pods by names containing \"conduit\" (scrape jobs are fine: the chart's monitors set job=conduit-<component>). Use a fullnameOverride that contains \"conduit\" or leave it empty." $v.fullnameOverride) -}}
{{- end -}}
{{- if $v.masterKey.existingSecret -}}
{{- include "conduit.checkExistingSecret" (list . $v.masterKey.existingSecret $v.masterKey.existingSecretKey "masterKey") -}}
{{- end -}}
{{- if and $v.webui.enabled $v.webui.clerk.existingSecret -}}
{{- include "conduit.checkExistingSecret" (list . $v.webui.clerk.existingSecret $v.webui.clerk.secretKeyKey "webui.clerk") -}}
{{- end -}}
{{- end -}}
