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
Usage: $components := include "boxscore.components" . | fromJson
*/}}
{{- define "boxscore.components" -}}
{{- $out := dict }}
{{- range $name, $component := .Values.components }}
{{- if $component.enabled }}
{{- $merged := mergeOverwrite (deepCopy $.Values.default) (deepCopy $component) }}
{{- $_ := set $merged "name" $name }}
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

{{/* PostgreSQL connection string without credentials: pgx takes them from PGUSER/PGPASSWORD. */}}
{{- define "boxscore.warehouseURL" -}}
{{- $w := .Values.warehouse }}
{{- printf "postgres://%s:%d/%s?sslmode=%s" (required "warehouse.host is required: the warehouse endpoint's host name" $w.host) (int $w.port) $w.database $w.sslMode }}
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
{{- end }}
{{- if not $l.database }}{{ $_ := set $l "database" $w.database }}{{ end }}
{{- if not $l.existingSecret.name }}{{ $_ := set $l "existingSecret" $w.existingSecret }}{{ end }}
{{- toJson $l }}
{{- end }}

{{- define "boxscore.leaseStoreURL" -}}
{{- $l := include "boxscore.leaseStore" . | fromJson }}
{{- printf "postgres://%s:%d/%s?sslmode=%s" $l.host (int $l.port) $l.database $l.sslMode }}
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
{{- end }}
{{- if eq $c.name "loader" }}
{{- $_ := set $cfg "BOXSCORE_DATABASE_URL" (include "boxscore.warehouseURL" $root) }}
{{- $_ := set $cfg "BOXSCORE_WAREHOUSE_SCHEMA" $v.warehouse.schema }}
{{- $_ := set $cfg "BOXSCORE_MIGRATE" (toString $v.warehouse.migrate) }}
{{- end }}
{{- range $key, $value := $c.config }}
{{- $_ := set $cfg $key (toString $value) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The Secret holding a component's database credentials, or nothing. */}}
{{- define "boxscore.dbSecret" -}}
{{- if eq .c.name "loader" }}
{{- toJson .root.Values.warehouse.existingSecret }}
{{- else if eq .c.name "shard-consumer" }}
{{- toJson (include "boxscore.leaseStore" .root | fromJson).existingSecret }}
{{- else }}
{{- toJson dict }}
{{- end }}
{{- end }}

{{/*
The DDL-capable Secret the migrations Job uses for a component's schema: the loader's
migrations.existingSecret (else warehouse.existingSecret); the consumer's
migrations.leaseExistingSecret, else migrations.existingSecret when the lease store is the
warehouse, else the Secret the consumer itself uses.
*/}}
{{- define "boxscore.migrationSecret" -}}
{{- $m := .root.Values.migrations }}
{{- if eq .c.name "loader" }}
{{- toJson (ternary $m.existingSecret .root.Values.warehouse.existingSecret (ne $m.existingSecret.name "")) }}
{{- else if $m.leaseExistingSecret.name }}
{{- toJson $m.leaseExistingSecret }}
{{- else if and (not .root.Values.leaseStore.host) $m.existingSecret.name }}
{{- toJson $m.existingSecret }}
{{- else }}
{{- include "boxscore.dbSecret" . }}
{{- end }}
{{- end }}
