{{/*
Standard names and labels.
*/}}
{{- define "dicomvault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dicomvault.fullname" -}}
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

{{- define "dicomvault.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dicomvault.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dicomvault.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dicomvault.labels" -}}
helm.sh/chart: {{ include "dicomvault.chart" . }}
{{ include "dicomvault.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dicomvault
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "gateway") */}}
{{- define "dicomvault.componentLabels" -}}
{{ include "dicomvault.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dicomvault.componentSelectorLabels" -}}
{{ include "dicomvault.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* <fullname>-<component>, at most 63 characters. */}}
{{- define "dicomvault.componentName" -}}
{{- printf "%s-%s" (include "dicomvault.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dicomvault.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dicomvault.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dicomvault.operatorServiceAccountName" -}}
{{- include "dicomvault.componentName" (dict "root" . "component" "operator") }}
{{- end }}

{{/*
Services: values key -> component name (the `dicomvault run` argument) and default HTTP port.
*/}}
{{- define "dicomvault.services" -}}
gateway: {component: gateway, port: 8080, cache: true}
catalogue: {component: catalogue, port: 8081, database: true}
hsmArchiver: {component: hsm-archiver, port: 8082, cache: true}
opticalBurner: {component: optical-burner, port: 8083, cache: true}
stowExporter: {component: stow-exporter, port: 8084, cache: true}
commitment: {component: commitment, port: 8085, cache: true}
operator: {component: operator, port: 8086}
{{- end }}

{{/* The image of one service: (dict "root" $ "key" "gateway") */}}
{{- define "dicomvault.image" -}}
{{- $img := mergeOverwrite (deepCopy .root.Values.image) (deepCopy (index .root.Values .key "image" | default dict)) }}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag | toString) }}
{{- end }}

{{- define "dicomvault.imagePullPolicy" -}}
{{- $img := mergeOverwrite (deepCopy .root.Values.image) (deepCopy (index .root.Values .key "image" | default dict)) }}
{{- $img.pullPolicy }}
{{- end }}

{{/* Kafka bootstrap servers: the Strimzi cluster's bootstrap Service, or the external one. */}}
{{- define "dicomvault.kafkaName" -}}
{{- include "dicomvault.componentName" (dict "root" . "component" "kafka") }}
{{- end }}

{{- define "dicomvault.bootstrapServers" -}}
{{- if .Values.kafka.strimzi.enabled }}
{{- printf "%s-kafka-bootstrap:9092" (include "dicomvault.kafkaName" .) }}
{{- else }}
{{- required "kafka.bootstrapServers is required when kafka.strimzi.enabled is false" .Values.kafka.bootstrapServers }}
{{- end }}
{{- end }}

{{- define "dicomvault.catalogueUrl" -}}
{{- $port := dig "http" "port" 8081 (.Values.catalogue.settings | default dict) | int }}
{{- printf "%s://%s:%d" (include "dicomvault.httpScheme" . | lower) (include "dicomvault.componentName" (dict "root" . "component" "catalogue")) $port }}
{{- end }}

{{/* HTTPS or HTTP: the scheme of every service's HTTP port (probes, URLs). */}}
{{- define "dicomvault.httpScheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* Does this service call the catalogue (has a `client` section)? (dict "root" $ "key" "gateway") */}}
{{- define "dicomvault.callsCatalogue" -}}
{{- if has .key (list "gateway" "hsmArchiver" "opticalBurner" "stowExporter" "commitment" "operator") }}true{{ end }}
{{- end }}

{{/* Does this service verify bearer tokens (has an `auth` section)? Every service with a
REST API: the gateway's /dicomweb, the catalogue's and the others' /api/v1. */}}
{{- define "dicomvault.verifiesTokens" -}}
{{- if has .key (list "gateway" "catalogue" "hsmArchiver" "opticalBurner" "stowExporter" "commitment") }}true{{ end }}
{{- end }}

{{- define "dicomvault.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- include "dicomvault.componentName" (dict "root" . "component" "database") }}
{{- end }}
{{- end }}

{{- define "dicomvault.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}url{{ end }}
{{- end }}

{{/* Claim names of the tier volumes: (dict "root" $ "tier" "cache") */}}
{{- define "dicomvault.claimName" -}}
{{- $p := index .root.Values.persistence .tier }}
{{- if $p.existingClaim }}
{{- $p.existingClaim }}
{{- else }}
{{- include "dicomvault.componentName" (dict "root" .root "component" .tier) }}
{{- end }}
{{- end }}

{{/* Is the cache a PersistentVolumeClaim (file-system back end with persistence)? */}}
{{- define "dicomvault.cacheClaimEnabled" -}}
{{- if and (eq .Values.cache.backend "fs") .Values.persistence.cache.enabled }}true{{ end }}
{{- end }}

{{- define "dicomvault.secretsDir" -}}/var/run/secrets/dicomvault{{- end }}
{{- define "dicomvault.exporterSpecDir" -}}/etc/dicomvault/exporter{{- end }}

{{/*
The settings of one service as a YAML map, lowest precedence first: what the chart knows
(bus, listeners, volumes, peers), the global `settings`, the service's `settings`.
(dict "root" $ "key" "gateway")
*/}}
{{- define "dicomvault.settings" -}}
{{- $root := .root }}
{{- $svc := index (include "dicomvault.services" $root | fromYaml) .key }}
{{- $s := dict "bus" (dict "bootstrap_servers" (include "dicomvault.bootstrapServers" $root)) "http" (dict "host" "0.0.0.0" "port" $svc.port) }}
{{- if $svc.cache }}
{{- if eq $root.Values.cache.backend "s3" }}
{{- $s3 := dict "bucket" $root.Values.cache.s3.bucket "prefix" $root.Values.cache.s3.prefix "region" $root.Values.cache.s3.region "path_style" $root.Values.cache.s3.pathStyle }}
{{- if $root.Values.cache.s3.endpointUrl }}{{ $_ := set $s3 "endpoint_url" $root.Values.cache.s3.endpointUrl }}{{ end }}
{{- if $root.Values.cache.s3.credentialsSecret }}{{ $_ := set $s3 "credentials_file" (printf "%s/s3/%s" (include "dicomvault.secretsDir" $root) $root.Values.cache.s3.credentialsSecretKey) }}{{ end }}
{{- $_ := set $s "cache" (dict "backend" "s3" "s3" $s3) }}
{{- else }}
{{- $_ := set $s "cache" (dict "backend" "fs" "root" $root.Values.cache.mountPath) }}
{{- end }}
{{- end }}
{{- if $svc.database }}
{{- $_ := set $s "database" (dict "url_file" (printf "%s/database/url" (include "dicomvault.secretsDir" $root))) }}
{{- end }}
{{- $secrets := include "dicomvault.secretsDir" $root }}
{{- if $root.Values.tls.enabled }}
{{- $tls := $root.Values.tls }}
{{- $_ := set $s.http "cert_file" (printf "%s/tls/%s" $secrets $tls.certKey) }}
{{- $_ := set $s.http "key_file" (printf "%s/tls/%s" $secrets $tls.keyKey) }}
{{- end }}
{{- if include "dicomvault.callsCatalogue" . }}
{{- $client := dict }}
{{- if and $root.Values.tls.enabled $root.Values.tls.caKey }}{{ $_ := set $client "ca_file" (printf "%s/tls/%s" $secrets $root.Values.tls.caKey) }}{{ end }}
{{- if (index $root.Values .key).tokenSecret }}{{ $_ := set $client "token_file" (printf "%s/token/%s" $secrets (index $root.Values .key).tokenSecretKey) }}{{ end }}
{{- if $client }}{{ $_ := set $s "client" $client }}{{ end }}
{{- end }}
{{- if include "dicomvault.verifiesTokens" . }}
{{- $auth := $root.Values.auth }}
{{- if not $auth.enabled }}
{{- $_ := set $s "auth" (dict "enabled" false) }}
{{- else if $auth.keySecret }}
{{- $file := printf "%s/auth/%s" $secrets $auth.keySecretKey }}
{{- $a := dict "enabled" true "audience" $auth.audience "issuer" $auth.issuer }}
{{- if eq $auth.keyFormat "pem" }}{{ $_ := set $a "public_key_file" $file }}{{ else }}{{ $_ := set $a "jwks_file" $file }}{{ end }}
{{- $_ := set $s "auth" $a }}
{{- end }}
{{- end }}
{{- $catalogue := "" }}
{{- if ne .key "catalogue" }}{{ $catalogue = include "dicomvault.catalogueUrl" $root }}{{ end }}
{{- if eq .key "gateway" }}
{{- $_ := set $s "gateway" (dict "dimse_host" "0.0.0.0" "dimse_port" 11112 "catalogue_url" $catalogue) }}
{{- else if eq .key "hsmArchiver" }}
{{- $_ := set $s "hsm" (dict "catalogue_url" $catalogue) }}
{{- else if eq .key "opticalBurner" }}
{{- $_ := set $s "optical" (dict "catalogue_url" $catalogue) }}
{{- else if eq .key "commitment" }}
{{- $_ := set $s "commitment" (dict "dimse_host" "0.0.0.0" "dimse_port" 11113 "catalogue_url" $catalogue) }}
{{- else if eq .key "stowExporter" }}
{{- $_ := set $s "exporter" (dict "catalogue_url" $catalogue "spec_file" (printf "%s/exporters.yaml" (include "dicomvault.exporterSpecDir" $root)) "secrets_dir" (include "dicomvault.secretsDir" $root)) }}
{{- else if eq .key "operator" }}
{{- $env := dict "DICOMVAULT_LOG__LEVEL" (dig "log" "level" "INFO" $root.Values.settings | toString) }}
{{- $env = mergeOverwrite $env (deepCopy $root.Values.operator.exporterEnv) }}
{{- $op := dict "namespace" $root.Release.Namespace "image" (include "dicomvault.image" (dict "root" $root "key" "stowExporter")) "image_pull_policy" (include "dicomvault.imagePullPolicy" (dict "root" $root "key" "stowExporter")) "service_account" (include "dicomvault.serviceAccountName" $root) "catalogue_url" $catalogue "cache_mount_path" $root.Values.cache.mountPath "exporter_http_port" 8084 "exporter_env" ($env | toJson) "resources" ($root.Values.operator.exporterResources | toJson) }}
{{- $pullSecrets := list }}
{{- range $root.Values.imagePullSecrets }}{{ if kindIs "map" . }}{{ $pullSecrets = append $pullSecrets .name }}{{ else }}{{ $pullSecrets = append $pullSecrets . }}{{ end }}{{ end }}
{{- $_ := set $op "image_pull_secrets" $pullSecrets }}
{{- if include "dicomvault.cacheClaimEnabled" $root }}
{{- $_ := set $op "cache_claim_name" (include "dicomvault.claimName" (dict "root" $root "tier" "cache")) }}
{{- end }}
{{- if $root.Values.tls.enabled }}
{{- $_ := set $op "exporter_tls_secret" $root.Values.tls.secretName }}
{{- $_ := set $op "exporter_tls_cert_key" $root.Values.tls.certKey }}
{{- $_ := set $op "exporter_tls_key_key" $root.Values.tls.keyKey }}
{{- $_ := set $op "exporter_tls_ca_key" $root.Values.tls.caKey }}
{{- end }}
{{- if $root.Values.stowExporter.tokenSecret }}
{{- $_ := set $op "exporter_token_secret" $root.Values.stowExporter.tokenSecret }}
{{- $_ := set $op "exporter_token_key" $root.Values.stowExporter.tokenSecretKey }}
{{- end }}
{{- $auth := $root.Values.auth }}
{{- $_ := set $op "exporter_auth_enabled" $auth.enabled }}
{{- if and $auth.enabled $auth.keySecret }}
{{- $_ := set $op "exporter_auth_key_secret" $auth.keySecret }}
{{- $_ := set $op "exporter_auth_key_key" $auth.keySecretKey }}
{{- $_ := set $op "exporter_auth_key_format" $auth.keyFormat }}
{{- $_ := set $op "exporter_auth_issuer" $auth.issuer }}
{{- $_ := set $op "exporter_auth_audience" $auth.audience }}
{{- end }}
{{- $_ := set $s "operator" $op }}
{{- end }}
{{- $s = mergeOverwrite $s (deepCopy ($root.Values.settings | default dict)) (deepCopy (index $root.Values .key "settings" | default dict)) }}
{{- toYaml $s }}
{{- end }}

{{/*
A map is flattened into DICOMVAULT_A__B only when every key is a settings field name
(lower-case snake case); other maps (AE titles, env names) and lists travel as one JSON value.
*/}}
{{- define "dicomvault.isFieldMap" -}}
{{- $ok := true }}
{{- range $k, $_ := . }}{{ if not (regexMatch "^[a-z][a-z0-9_]*$" $k) }}{{ $ok = false }}{{ end }}{{ end }}
{{- if and $ok (gt (len .) 0) }}true{{ end }}
{{- end }}

{{/* EnvVar list items of a settings map: (dict "prefix" "DICOMVAULT_" "settings" $map) */}}
{{- define "dicomvault.settingsEnv" -}}
{{- $prefix := .prefix }}
{{- range $k, $v := .settings }}
{{- $name := printf "%s%s" $prefix (upper $k) }}
{{- if kindIs "invalid" $v }}
{{- else if and (kindIs "map" $v) (include "dicomvault.isFieldMap" $v) }}
{{- include "dicomvault.settingsEnv" (dict "prefix" (printf "%s__" $name) "settings" $v) }}
{{- else if kindIs "string" $v }}
- name: {{ $name }}
  value: {{ $v | quote }}
{{- else }}
- name: {{ $name }}
  value: {{ $v | toJson | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* HTTP port of a service after its settings: (dict "root" $ "key" "gateway") */}}
{{- define "dicomvault.httpPort" -}}
{{- $s := include "dicomvault.settings" . | fromYaml }}
{{- $s.http.port | int }}
{{- end }}
