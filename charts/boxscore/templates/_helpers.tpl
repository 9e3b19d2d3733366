{{/* Names, labels and the per-component view of the values. */}}

{{- define "boxscore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-wide prefix: <release>-boxscore, or the release name when it already says boxscore. */}}
{{- define "boxscore.fullname" -}}
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

{{- define "boxscore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "boxscore.labels" -}}
helm.sh/chart: {{ include "boxscore.chart" . }}
app.kubernetes.io/name: {{ include "boxscore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: boxscore
{{- end }}

{{/* Selects every pod of the release (NetworkPolicy peers). */}}
{{- define "boxscore.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "boxscore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The components, each merged over `default`, as a dict name -> merged values (JSON, because
templates can only return strings). Disabled components are left out.
With a Redshift warehouse, the consumer's and the loader's shutdown.timeoutSeconds are at
least warehouse.redshift.rpcTimeoutSeconds + 30: a Load in flight at SIGTERM (a batch window,
a COPY, a MERGE) must be able to commit before the pod is stopped.
Usage: $components := include "boxscore.components" . | fromJson
*/}}
{{- define "boxscore.components" -}}
{{- $out := dict }}
{{- range $name, $component := .Values.components }}
{{- if $component.enabled }}
{{- $merged := mergeOverwrite (deepCopy $.Values.default) (deepCopy $component) }}
{{- $_ := set $merged "name" $name }}
{{- if and (eq $.Values.warehouse.engine "redshift") (has $name (list "shard-consumer" "loader")) }}
{{- $least := add (int $.Values.warehouse.redshift.rpcTimeoutSeconds) 30 }}
{{- if lt (int $merged.shutdown.timeoutSeconds) $least }}
{{- $_ := set $merged.shutdown "timeoutSeconds" $least }}
{{- end }}
{{- end }}
{{- $_ := set $out $name $merged }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Context for the per-component helpers: dict "root" $ "c" <merged component>. */}}

{{- define "boxscore.componentFullname" -}}
{{- printf "%s-%s" (include "boxscore.fullname" .root) .c.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "boxscore.componentSelectorLabels" -}}
{{ include "boxscore.releaseSelectorLabels" .root }}
app.kubernetes.io/component: {{ .c.name }}
{{- end }}

{{- define "boxscore.componentLabels" -}}
{{ include "boxscore.labels" .root }}
app.kubernetes.io/component: {{ .c.name }}
{{- end }}

{{- define "boxscore.serviceAccountName" -}}
{{- if .c.serviceAccount.create }}
{{- default (include "boxscore.componentFullname" .) .c.serviceAccount.name }}
{{- else }}
{{- required (printf "components.%s.serviceAccount.name is required when serviceAccount.create is false" .c.name) .c.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Components that other components dial over gRPC (the consumer calls both). Each gets a headless
Service beside its ClusterIP one: see "boxscore.grpcTarget".
*/}}
{{- define "boxscore.grpcBackends" -}}
{{- toJson (list "transformer" "loader") }}
{{- end }}

{{- define "boxscore.headlessServiceName" -}}
{{- printf "%s-headless" (include "boxscore.componentFullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
The gRPC target the consumer dials for a backend: dns:///<headless Service>:<grpc port>.
A ClusterIP Service is one virtual IP: kube-proxy balances per TCP connection, and gRPC keeps
one connection, so a client would send every call to one pod however many the HPA adds. The
headless Service's DNS name answers with every ready pod's address, and the client
(pkg/server.Dial, round_robin) spreads calls over all of them; the servers' max connection age
(grpc.maxConnectionAge) makes clients re-resolve, so they find pods added later.
The short name, not <svc>.<namespace>.svc.cluster.local: the consumer always runs in the
release's namespace, so the pod's DNS search path resolves it at the first try, and it does not
assume the cluster domain is cluster.local (the long form also costs three failed lookups per
resolution under the default ndots:5 unless written with a trailing dot). It would break only
for a consumer moved to another namespace, or with a dnsPolicy without the cluster search path.
Usage: include "boxscore.grpcTarget" (dict "root" $root "name" "transformer")
*/}}
{{- define "boxscore.grpcTarget" -}}
{{- $ctx := dict "root" .root "c" (dict "name" .name) }}
{{- printf "dns:///%s:%d" (include "boxscore.headlessServiceName" $ctx) (int (index .root.Values.components .name).ports.grpc) }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest pins it. */}}
{{- define "boxscore.image" -}}
{{- $repository := required (printf "components.%s.image.repository is required" .c.name) .c.image.repository }}
{{- if .c.image.digest }}
{{- printf "%s@%s" $repository .c.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion .c.image.tag) }}
{{- end }}
{{- end }}

{{/* Replicas of a component that no autoscaler owns; the consumer follows the shard count. */}}
{{- define "boxscore.replicas" -}}
{{- if and (eq .c.name "shard-consumer") (kindIs "invalid" .c.replicas) }}
{{- $shards := int .root.Values.stream.shards }}
{{- $per := int .root.Values.stream.shardsPerReplica }}
{{- div (add $shards (sub $per 1)) $per }}
{{- else }}
{{- int (default 1 .c.replicas) }}
{{- end }}
{{- end }}

{{/* "true" when an autoscaler (HPA or KEDA) owns the replica count of the component. */}}
{{- define "boxscore.autoscaled" -}}
{{- if eq .c.name "shard-consumer" }}
{{- if and .c.keda .c.keda.enabled }}true{{ end }}
{{- else if .c.autoscaling.enabled }}true{{ end }}
{{- end }}

{{/* The port of a URL: its explicit port, else 443 for https and 80 for http. */}}
{{- define "boxscore.urlPort" -}}
{{- $u := urlParse . }}
{{- $hostPort := splitList ":" $u.host }}
{{- if gt (len $hostPort) 1 }}
{{- last $hostPort }}
{{- else if eq $u.scheme "http" }}80
{{- else }}443
{{- end }}
{{- end }}

{{/* Port the gateway and the consumer use for AWS (Kinesis): 443, or the endpoint override's. */}}
{{- define "boxscore.awsPort" -}}
{{- if .Values.stream.endpoint }}
{{- include "boxscore.urlPort" .Values.stream.endpoint }}
{{- else }}443
{{- end }}
{{- end }}

{{/* Where a component's database CA bundle is mounted (one database per pod). */}}
{{- define "boxscore.databaseCAFile" -}}/etc/boxscore/database-ca/ca.pem{{- end }}

{{/* The sslrootcert parameter when a CA bundle is given (a caBundle dict), else nothing. */}}
{{- define "boxscore.sslRootCert" -}}
{{- if or .configMap .secret }}&sslrootcert={{ include "boxscore.databaseCAFile" . }}{{ end }}
{{- end }}

{{/*
PostgreSQL connection string without credentials: pgx takes them from PGUSER/PGPASSWORD, or
the service builds an RDS IAM token per connection (BOXSCORE_DATABASE_IAM_AUTH).
*/}}
{{- define "boxscore.warehouseURL" -}}
{{- $w := .Values.warehouse }}
{{- printf "postgres://%s:%d/%s?sslmode=%s%s" (required "warehouse.host is required: the warehouse endpoint's host name" $w.host) (int $w.port) $w.database $w.sslMode (include "boxscore.sslRootCert" $w.caBundle) }}
{{- end }}

{{/* The lease store, with the warehouse's settings where its own are empty. */}}
{{- define "boxscore.leaseStore" -}}
{{- $l := deepCopy .Values.leaseStore }}
{{- $w := .Values.warehouse }}
{{- if not $l.host }}
{{- if eq $w.engine "redshift" }}
{{- fail "leaseStore.host is required when warehouse.engine is redshift: leases need PostgreSQL (docs/consumer-group.md)" }}
{{- end }}
{{- $_ := set $l "host" (required "warehouse.host is required: the warehouse endpoint's host name" $w.host) }}
{{- $_ := set $l "port" $w.port }}
{{- $_ := set $l "cidrs" $w.cidrs }}
{{- $_ := set $l "sslMode" $w.sslMode }}
{{- $_ := set $l "caBundle" $w.caBundle }}
{{- $_ := set $l "iamAuth" $w.iamAuth }}
{{- end }}
{{- if not $l.database }}{{ $_ := set $l "database" $w.database }}{{ end }}
{{- if not $l.existingSecret.name }}{{ $_ := set $l "existingSecret" $w.existingSecret }}{{ end }}
{{- toJson $l }}
{{- end }}

{{- define "boxscore.leaseStoreURL" -}}
{{- $l := include "boxscore.leaseStore" . | fromJson }}
{{- printf "postgres://%s:%d/%s?sslmode=%s%s" $l.host (int $l.port) $l.database $l.sslMode (include "boxscore.sslRootCert" $l.caBundle) }}
{{- end }}

{{/*
The component's configuration (BOXSCORE_* variables), the ConfigMap's data. Listen addresses
are not here but on the container, beside the ports they must match.
*/}}
{{- define "boxscore.config" -}}
{{- $root := .root }}
{{- $c := .c }}
{{- $v := $root.Values }}
{{- $cfg := dict }}
{{- $_ := set $cfg "BOXSCORE_LOG_LEVEL" $v.telemetry.logLevel }}
{{- $_ := set $cfg "BOXSCORE_LOG_FORMAT" $v.telemetry.logFormat }}
{{- $_ := set $cfg "BOXSCORE_DRAIN_DELAY" (printf "%ds" (int $c.shutdown.drainDelaySeconds)) }}
{{- $_ := set $cfg "BOXSCORE_SHUTDOWN_TIMEOUT" (printf "%ds" (int $c.shutdown.timeoutSeconds)) }}
{{- $_ := set $cfg "BOXSCORE_GRPC_MAX_CONNECTION_AGE" (toString $c.grpc.maxConnectionAge) }}
{{- if or (eq $c.name "ingest-gateway") (eq $c.name "shard-consumer") }}
{{- $_ := set $cfg "BOXSCORE_STREAM" $v.stream.name }}
{{- $_ := set $cfg "AWS_REGION" $v.stream.region }}
{{- if $v.stream.endpoint }}{{ $_ := set $cfg "BOXSCORE_KINESIS_ENDPOINT" $v.stream.endpoint }}{{ end }}
{{- end }}
{{- if eq $c.name "shard-consumer" }}
{{- $_ := set $cfg "BOXSCORE_TRANSFORMER_ADDR" (include "boxscore.grpcTarget" (dict "root" $root "name" "transformer")) }}
{{- $_ := set $cfg "BOXSCORE_LOADER_ADDR" (include "boxscore.grpcTarget" (dict "root" $root "name" "loader")) }}
{{- $_ := set $cfg "BOXSCORE_LEASE_DATABASE_URL" (include "boxscore.leaseStoreURL" $root) }}
{{- $_ := set $cfg "BOXSCORE_LEASE_SCHEMA" $v.leaseStore.schema }}
{{- $_ := set $cfg "BOXSCORE_MIGRATE" (toString $v.warehouse.migrate) }}
{{- if eq $v.warehouse.engine "redshift" }}
{{- /* A Load waits for the batch window, a COPY and a MERGE (components.<name>.config wins). */}}
{{- $_ := set $cfg "BOXSCORE_RPC_TIMEOUT" (printf "%ds" (int $v.warehouse.redshift.rpcTimeoutSeconds)) }}
{{- end }}
{{- end }}
{{- if eq $c.name "loader" }}
{{- $_ := set $cfg "BOXSCORE_DATABASE_URL" (include "boxscore.warehouseURL" $root) }}
{{- $_ := set $cfg "BOXSCORE_WAREHOUSE_SCHEMA" $v.warehouse.schema }}
{{- $_ := set $cfg "BOXSCORE_MIGRATE" (toString $v.warehouse.migrate) }}
{{- $_ := set $cfg "BOXSCORE_WAREHOUSE_ENGINE" $v.warehouse.engine }}
{{- if eq $v.warehouse.engine "redshift" }}
{{- $r := $v.warehouse.redshift }}
{{- $_ := set $cfg "BOXSCORE_REDSHIFT_STAGING_URI" (required "warehouse.redshift.stagingUri is required when warehouse.engine is redshift: s3://bucket/prefix/ where loads are staged" $r.stagingUri) }}
{{- $_ := set $cfg "BOXSCORE_REDSHIFT_COPY_ROLE_ARN" (required "warehouse.redshift.copyRoleArn is required when warehouse.engine is redshift: the role Redshift assumes to read the staged objects" $r.copyRoleArn) }}
{{- $_ := set $cfg "BOXSCORE_REDSHIFT_BATCH_WINDOW" $r.batchWindow }}
{{- with $r.s3Endpoint }}{{ $_ := set $cfg "BOXSCORE_S3_ENDPOINT" . }}{{ end }}
{{- $_ := set $cfg "AWS_REGION" (default $v.stream.region $r.region) }}
{{- $_ := set $cfg "BOXSCORE_REDSHIFT_IAM" (toString $r.iam.enabled) }}
{{- if $r.iam.enabled }}
{{- with $r.iam.clusterId }}{{ $_ := set $cfg "BOXSCORE_REDSHIFT_CLUSTER_ID" . }}{{ end }}
{{- with $r.iam.workgroup }}{{ $_ := set $cfg "BOXSCORE_REDSHIFT_WORKGROUP" . }}{{ end }}
{{- $_ := set $cfg "BOXSCORE_REDSHIFT_CREDENTIALS_DURATION" $r.iam.credentialsDuration }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "BOXSCORE_INSECURE" (toString $v.insecure) }}
{{- $_ := set $cfg "BOXSCORE_PPROF" (toString $c.pprof) }}
{{- $_ := set $cfg "BOXSCORE_GRPC_REFLECTION" (toString $c.grpcReflection) }}
{{- if $v.tls.enabled }}
{{- $_ := set $cfg "BOXSCORE_TLS_CERT_FILE" "/etc/boxscore/tls/tls.crt" }}
{{- $_ := set $cfg "BOXSCORE_TLS_KEY_FILE" "/etc/boxscore/tls/tls.key" }}
{{- $_ := set $cfg "BOXSCORE_TLS_CA_FILE" "/etc/boxscore/tls/ca.crt" }}
{{- with $c.grpcClients }}
{{- $_ := set $cfg "BOXSCORE_GRPC_CLIENTS" (join "," .) }}
{{- end }}
{{- end }}
{{- $db := include "boxscore.database" . | fromJson }}
{{- if $db }}
{{- $_ := set $cfg "BOXSCORE_DATABASE_IAM_AUTH" (toString $db.iamAuth) }}
{{- if $db.iamAuth }}
{{- $_ := set $cfg "BOXSCORE_DATABASE_IAM_REGION" $db.region }}
{{- end }}
{{- end }}
{{- if eq $c.name "ingest-gateway" }}
{{- $a := $v.auth }}
{{- if $a.apiKeys.enabled }}
{{- $_ := set $cfg "BOXSCORE_API_KEYS_FILE" "/etc/boxscore/api-keys/keys.yaml" }}
{{- end }}
{{- with $a.oidc.issuer }}
{{- $_ := set $cfg "BOXSCORE_OIDC_ISSUER" . }}
{{- $_ := set $cfg "BOXSCORE_OIDC_AUDIENCE" (required "auth.oidc.audience is required with auth.oidc.issuer: a token for another audience must not be accepted" $a.oidc.audience) }}
{{- with $a.oidc.jwksUrl }}{{ $_ := set $cfg "BOXSCORE_OIDC_JWKS_URL" . }}{{ end }}
{{- $_ := set $cfg "BOXSCORE_OIDC_PRODUCER_CLAIM" $a.oidc.producerClaim }}
{{- $_ := set $cfg "BOXSCORE_OIDC_SCOPES_CLAIM" $a.oidc.scopesClaim }}
{{- end }}
{{- if $a.defaultQuota.eventsPerSecond }}
{{- $_ := set $cfg "BOXSCORE_DEFAULT_EVENTS_PER_SECOND" (include "boxscore.number" $a.defaultQuota.eventsPerSecond) }}
{{- end }}
{{- if $a.defaultQuota.bytesPerSecond }}
{{- $_ := set $cfg "BOXSCORE_DEFAULT_BYTES_PER_SECOND" (include "boxscore.number" $a.defaultQuota.bytesPerSecond) }}
{{- end }}
{{- end }}
{{- range $key, $value := $c.config }}
{{- $_ := set $cfg $key (toString $value) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
How a component reaches its database, as JSON, or {} for components without one:
  iamAuth   RDS IAM tokens instead of a password
  redshiftIAM  Redshift temporary IAM credentials (user and password) instead of a Secret
  user      PGUSER with iamAuth
  region    the token's region
  secret    the credentials Secret without iamAuth
  caBundle  {configMap, secret, key} of the CA that verifies the server
The loader's is the warehouse; the consumer's its lease store (the warehouse's settings unless
it has a host of its own).
*/}}
{{- define "boxscore.database" -}}
{{- $v := .root.Values }}
{{- $region := default $v.stream.region $v.warehouse.iamRegion }}
{{- if eq .c.name "loader" }}
{{- $w := $v.warehouse }}
{{- $redshiftIAM := and (eq $w.engine "redshift") $w.redshift.iam.enabled }}
{{- toJson (dict "iamAuth" $w.iamAuth "redshiftIAM" $redshiftIAM "user" $w.iamUser "region" $region "secret" (ternary dict $w.existingSecret $redshiftIAM) "caBundle" $w.caBundle) }}
{{- else if eq .c.name "shard-consumer" }}
{{- $l := include "boxscore.leaseStore" .root | fromJson }}
{{- toJson (dict "iamAuth" $l.iamAuth "user" $l.iamUser "region" $region "secret" $l.existingSecret "caBundle" $l.caBundle) }}
{{- else }}
{{- toJson dict }}
{{- end }}
{{- end }}

{{/* "true" when producers must authenticate at the gateway (API keys or OIDC). */}}
{{- define "boxscore.authEnabled" -}}
{{- $a := .Values.auth }}
{{- if or $a.apiKeys.enabled $a.oidc.issuer }}true{{ end }}
{{- end }}

{{/* The Secret holding the gateway's API keys file: the chart's own when keys are in values. */}}
{{- define "boxscore.apiKeysSecretName" -}}
{{- if .Values.auth.apiKeys.keys }}
{{- printf "%s-api-keys" (include "boxscore.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "auth.apiKeys.existingSecret is required when auth.apiKeys.enabled and no auth.apiKeys.keys are given: the Secret holding the keys file" .Values.auth.apiKeys.existingSecret }}
{{- end }}
{{- end }}

{{/* The Secret holding a component's TLS certificate, key and CA. */}}
{{- define "boxscore.tlsSecretName" -}}
{{- if .root.Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "boxscore.componentFullname" . | trunc 59 | trimSuffix "-") }}
{{- else }}
{{- required (printf "tls.existingSecrets.%s is required when tls.enabled and tls.certManager.enabled is false: the Secret with its tls.crt, tls.key and ca.crt" .c.name) (get .root.Values.tls.existingSecrets .c.name) }}
{{- end }}
{{- end }}

{{/*
Refuses values that would run the release open by accident: producers unauthenticated,
internal gRPC in plaintext or a database connection that trusts any server, unless
`insecure: true` says so. Renders nothing.
*/}}
{{- define "boxscore.validateSecurity" -}}
{{- $v := .Values }}
{{- if not $v.insecure }}
{{- if not (include "boxscore.authEnabled" .) }}
{{- fail "producer authentication is off (auth.apiKeys.enabled false and no auth.oidc.issuer): anyone who reaches the gateway could write to the warehouse. Enable API keys or OIDC, or set insecure: true for a throwaway dev cluster (docs/security.md)" }}
{{- end }}
{{- if not $v.tls.enabled }}
{{- fail "tls.enabled is false: internal gRPC would be plaintext and unauthenticated, and any pod could call the loader. Enable tls (cert-manager or existing Secrets), or set insecure: true for a throwaway dev cluster (docs/security.md)" }}
{{- end }}
{{- $components := include "boxscore.components" . | fromJson }}
{{- range $name := list "loader" "shard-consumer" }}
{{- if hasKey $components $name }}
{{- $db := include "boxscore.database" (dict "root" $ "c" (dict "name" $name)) | fromJson }}
{{- $mode := ternary $v.warehouse.sslMode (include "boxscore.leaseStore" $ | fromJson).sslMode (eq $name "loader") }}
{{- if not (has $mode (list "verify-full" "verify-ca")) }}
{{- fail (printf "the %s's database sslMode is %s, which does not verify the server (%s): use verify-full with a caBundle, or set insecure: true" $name $mode (ternary "warehouse.sslMode" "leaseStore.sslMode, else warehouse.sslMode" (eq $name "loader"))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.tls.enabled }}
{{- range $name, $c := include "boxscore.components" . | fromJson }}
{{- if eq $c.readinessProbe "grpc" }}
{{- fail (printf "components.%s.readinessProbe is grpc, but tls.enabled: the kubelet's gRPC probe speaks plaintext only and would never see the pod ready. Use http (GET /readyz, the same checks)" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq $v.warehouse.engine "redshift") $v.warehouse.iamAuth }}
{{- fail "warehouse.iamAuth is RDS IAM authentication for PostgreSQL; for Redshift's temporary IAM credentials set warehouse.redshift.iam (enabled, clusterId or workgroup)" }}
{{- end }}
{{- end }}

{{/*
A Kubernetes memory quantity (256Mi, 1Gi, 1.5G, 268435456) in bytes, as a float. Fails on a
form it does not know rather than guess.
*/}}
{{- define "boxscore.bytes" -}}
{{- $q := toString . | trim }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $number) (not (hasKey $units $suffix)) }}
{{- fail (printf "memory quantity %q: want a number with an optional suffix k, M, G, T, Ki, Mi, Gi or Ti" $q) }}
{{- end }}
{{- mulf (float64 $number) (get $units $suffix) }}
{{- end }}

{{/*
GOMEMLIMIT for a container: percent of its memory limit, in bytes, rounded down; nothing
without a limit or with percent 0.
Usage: include "boxscore.goMemLimit" (dict "resources" $c.resources "percent" $c.goMemLimitPercent)
*/}}
{{- define "boxscore.goMemLimit" -}}
{{- $limit := dig "limits" "memory" "" .resources }}
{{- if and $limit .percent }}
{{- $bytes := include "boxscore.bytes" $limit | float64 }}
{{- printf "%d" (floor (divf (mulf $bytes .percent) 100) | int64) }}
{{- end }}
{{- end }}

{{/*
How the migrations Job reaches a component's database (the shape of "boxscore.database"), as
the DDL-capable user: the loader's migrations.existingSecret; the consumer's
migrations.leaseExistingSecret, else migrations.existingSecret when the lease store is the
warehouse. Without those Secrets: IAM authentication as migrations.iamUser when the database
uses it, else the Secret the service itself uses.
*/}}
{{- define "boxscore.migrationDatabase" -}}
{{- $m := .root.Values.migrations }}
{{- $db := include "boxscore.database" . | fromJson }}
{{- $secret := dict }}
{{- if eq .c.name "loader" }}
{{- $secret = $m.existingSecret }}
{{- else if $m.leaseExistingSecret.name }}
{{- $secret = $m.leaseExistingSecret }}
{{- else if not .root.Values.leaseStore.host }}
{{- $secret = $m.existingSecret }}
{{- end }}
{{- if $secret.name }}
{{- $_ := set $db "iamAuth" false }}
{{- $_ := set $db "redshiftIAM" false }}
{{- $_ := set $db "secret" $secret }}
{{- else if $db.iamAuth }}
{{- $_ := set $db "user" (required "migrations.iamUser is required with IAM authentication and no migrations.existingSecret: the DDL-capable database user" $m.iamUser) }}
{{- end }}
{{- toJson $db }}
{{- end }}

{{/* The volume source of a CA bundle {configMap, secret, key}, as ca.pem. */}}
{{- define "boxscore.caBundleVolume" -}}
{{- if .configMap }}
configMap:
  name: {{ .configMap }}
  items:
    - key: {{ .key }}
      path: ca.pem
{{- else }}
secret:
  secretName: {{ .secret }}
  items:
    - key: {{ .key }}
      path: ca.pem
{{- end }}
{{- end }}

{{/*
A number from values as a string: whole numbers without an exponent (values are parsed as
floats, which would print 4000000 as 4e+06), fractions as they are.
*/}}
{{- define "boxscore.number" -}}
{{- if eq (float64 (int64 .)) (float64 .) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}

{{/*
The gateway's public HTTP API as the extractor reaches it: the gateway's ClusterIP Service by
its short name (the CronJob runs in the release's namespace), plain HTTP as inside the cluster
(tls.enabled is the internal gRPC's; the public HTTP API is served without TLS behind the
Ingress).
*/}}
{{- define "boxscore.extractorGatewayURL" -}}
{{- $gateway := .Values.components | dig "ingest-gateway" "enabled" false }}
{{- if not $gateway }}
{{- fail "extractor.enabled needs components.ingest-gateway.enabled: the extractor posts to the release's gateway" }}
{{- end }}
{{- $ctx := dict "root" . "c" (dict "name" "ingest-gateway") }}
{{- printf "http://%s:%d" (include "boxscore.componentFullname" $ctx) (int (index .Values.components "ingest-gateway").ports.http) }}
{{- end }}

{{/*
The Secret key holding the extractor's producer API key, as JSON {name, key}, or {} when the
gateway authenticates nobody (insecure, auth off). The extractor sends an API key: with OIDC
alone the gateway would refuse it.
*/}}
{{- define "boxscore.extractorAPIKey" -}}
{{- $e := .Values.extractor }}
{{- if include "boxscore.authEnabled" . }}
{{- if not .Values.auth.apiKeys.enabled }}
{{- fail "extractor.enabled with auth.apiKeys.enabled false: the extractor authenticates with an API key (extractor.apiKey), which the gateway would refuse; enable auth.apiKeys beside OIDC" }}
{{- end }}
{{- toJson (dict "name" (required "extractor.apiKey.existingSecret is required: the Secret holding the extractor's producer API key (never in values)" $e.apiKey.existingSecret) "key" $e.apiKey.secretKey) }}
{{- else }}
{{- toJson dict }}
{{- end }}
{{- end }}

{{- define "boxscore.extractorServiceAccountName" -}}
{{- $sa := .Values.extractor.serviceAccount }}
{{- if $sa.create }}
{{- default (include "boxscore.componentFullname" (dict "root" . "c" (dict "name" "extractor"))) $sa.name }}
{{- else }}
{{- required "extractor.serviceAccount.name is required when extractor.serviceAccount.create is false" $sa.name }}
{{- end }}
{{- end }}

{{/*
The OTEL_* variables of a Boxscore process (pkg/telemetry reads the standard ones): service
name; resource attributes (service.namespace, the workload's own, then
telemetry.resourceAttributes); sampler; the OTLP endpoint and protocol when
telemetry.otlpEndpoint is set. Takes a dict: root ($), service, attributes (the workload's
own, comma-separated), sampler, samplerArg.
*/}}
{{- define "boxscore.otelEnv" -}}
- name: OTEL_SERVICE_NAME
  value: {{ .service | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=boxscore,%s%s" .attributes (ternary (printf ",%s" .root.Values.telemetry.resourceAttributes) "" (ne .root.Values.telemetry.resourceAttributes "")) | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
{{- with .root.Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $.root.Values.telemetry.otlpProtocol | quote }}
{{- end }}
{{- end }}
