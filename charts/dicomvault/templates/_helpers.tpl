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
audit: {component: audit, port: 8087, database: true}
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
{{- if has .key (list "gateway" "catalogue" "hsmArchiver" "opticalBurner" "stowExporter" "commitment" "audit") }}true{{ end }}
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

{{/*
Two Secret directories that cannot collide. The chart's own Secrets (tls, token, auth, s3,
database) go under secretsDir/<purpose>; the Secrets the static stow-exporter's Exporters name
(stowExporter.secrets) go under exporterSecretsDir/<secret name>, as in the exporter pods the
operator creates (its TLS/token/auth mounts use the same dicomvault.io directory).
*/}}
{{- define "dicomvault.secretsDir" -}}/var/run/secrets/dicomvault.io{{- end }}
{{- define "dicomvault.exporterSecretsDir" -}}/var/run/secrets/dicomvault{{- end }}
{{- define "dicomvault.exporterSpecDir" -}}/etc/dicomvault/exporter{{- end }}

{{/*
The volumes of stowExporter.secrets, a YAML list of {name, secret, mountPath}: each Secret once,
at <exporterSecretsDir>/<secret name>. The volume name is "secret-<name>", or, when that is no
DNS label (a name with dots, longer than 56 characters), its sanitized start and a hash of the
name; never one of the chart's own volume names (none starts with "secret-").
*/}}
{{- define "dicomvault.exporterSecretVolumes" -}}
{{- $out := list }}
{{- $seen := dict }}
{{- range $secret := uniq .Values.stowExporter.secrets }}
{{- $name := printf "secret-%s" $secret }}
{{- $label := regexReplaceAll "[^a-z0-9-]" $name "-" }}
{{- if or (ne $label $name) (gt (len $name) 63) }}
{{- $name = printf "%s-%s" (regexReplaceAll "-+$" (trunc 54 $label) "") (sha256sum $secret | trunc 8) }}
{{- end }}
{{- if hasKey $seen $name }}
{{- fail (printf "stowExporter.secrets: %q and %q would share the pod volume name %q; rename one of the Secrets" (get $seen $name) $secret $name) }}
{{- end }}
{{- $_ := set $seen $name $secret }}
{{- $out = append $out (dict "name" $name "secret" $secret "mountPath" (printf "%s/%s" (include "dicomvault.exporterSecretsDir" $) $secret)) }}
{{- end }}
{{- toYaml $out }}
{{- end }}

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
{{- $_ := set $s "cache" (dict "backend" "fs" "root" $root.Values.cache.mountPath "folder_flush" ($root.Values.cache.folderFlush | default "auto")) }}
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
{{- if dig "viewer" "enabled" false $root.Values.gateway }}
{{- $_ := set $s "viewer" (dict "dist_dir" "/opt/dicomvault/ohif") }}
{{- end }}
{{- else if eq .key "hsmArchiver" }}
{{- $_ := set $s "hsm" (dict "catalogue_url" $catalogue) }}
{{- else if eq .key "opticalBurner" }}
{{- $_ := set $s "optical" (dict "catalogue_url" $catalogue) }}
{{- else if eq .key "commitment" }}
{{- $_ := set $s "commitment" (dict "dimse_host" "0.0.0.0" "dimse_port" 11113 "catalogue_url" $catalogue) }}
{{- else if eq .key "audit" }}
{{- $a := dict "syslog_url" $root.Values.audit.syslog.url }}
{{- if $root.Values.audit.syslog.caSecret }}{{ $_ := set $a "ca_file" (printf "%s/audit-ca/%s" $secrets $root.Values.audit.syslog.caSecretKey) }}{{ end }}
{{- $_ := set $s "audit" $a }}
{{- else if eq .key "stowExporter" }}
{{- $_ := set $s "exporter" (dict "catalogue_url" $catalogue "spec_file" (printf "%s/exporters.yaml" (include "dicomvault.exporterSpecDir" $root)) "secrets_dir" (include "dicomvault.exporterSecretsDir" $root)) }}
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

{{/* Names of the extra env vars of one service (global and its own extraEnv), a YAML list:
(dict "root" $ "key" "gateway") */}}
{{- define "dicomvault.extraEnvNames" -}}
{{- $names := list }}
{{- range concat (.root.Values.extraEnv | default list) ((index .root.Values .key).extraEnv | default list) }}
{{- $names = append $names .name }}
{{- end }}
{{- toYaml $names }}
{{- end }}

{{/* Is a pydantic boolean value false ("false", "0", "off", ...)? */}}
{{- define "dicomvault.isFalse" -}}
{{- if has (lower (toString .)) (list "false" "0" "no" "off" "f" "n") }}true{{ end }}
{{- end }}

{{/* Does this service require bearer tokens after its settings and extraEnv (auth.enabled,
else the services' default: true)? (dict "root" $ "key" "catalogue") */}}
{{- define "dicomvault.authOn" -}}
{{- $s := include "dicomvault.settings" . | fromYaml }}
{{- $off := include "dicomvault.isFalse" (dig "auth" "enabled" true $s) }}
{{- range concat (.root.Values.extraEnv | default list) ((index .root.Values .key).extraEnv | default list) }}
{{- if and (eq .name "DICOMVAULT_AUTH__ENABLED") (hasKey . "value") }}{{ $off = include "dicomvault.isFalse" .value }}{{ end }}
{{- end }}
{{- if not $off }}true{{ end }}
{{- end }}

{{/*
Render-time check of auth (included by validate.yaml). With tokens required, a service that
verifies tokens and has no issuer key refuses every request to its API, and a caller of the
catalogue without its own token has every catalogue call refused; both run, pass their
readiness checks and do nothing useful. So the missing values fail the render, all named at
once. A key or token file given another way (the service's settings, e.g. auth.jwks_file or
client.token_file with extraVolumes, or extraEnv) counts. The exporter pods the operator
creates get the keys from auth.keySecret and their token from stowExporter.tokenSecret.
*/}}
{{- define "dicomvault.validateAuth" -}}
{{- $root := . }}
{{- $noKeys := list }}
{{- $noToken := list }}
{{- $podsNoKeys := false }}
{{- $catalogueVerifies := include "dicomvault.authOn" (dict "root" $root "key" "catalogue") }}
{{- range $key, $svc := include "dicomvault.services" $root | fromYaml }}
{{- if (index $root.Values $key).enabled }}
{{- $ctx := dict "root" $root "key" $key }}
{{- $s := include "dicomvault.settings" $ctx | fromYaml }}
{{- $env := include "dicomvault.extraEnvNames" $ctx | fromYamlArray }}
{{- if and (include "dicomvault.verifiesTokens" $ctx) (include "dicomvault.authOn" $ctx) }}
{{- if not (or (dig "auth" "jwks_file" "" $s) (dig "auth" "public_key_file" "" $s) (has "DICOMVAULT_AUTH__JWKS_FILE" $env) (has "DICOMVAULT_AUTH__PUBLIC_KEY_FILE" $env)) }}
{{- $noKeys = append $noKeys $svc.component }}
{{- end }}
{{- end }}
{{- if and $catalogueVerifies (include "dicomvault.callsCatalogue" $ctx) (not (dig "client" "token_file" "" $s)) (not (has "DICOMVAULT_CLIENT__TOKEN_FILE" $env)) }}
{{- $noToken = append $noToken (printf "%s.tokenSecret" $key) }}
{{- end }}
{{- if eq $key "operator" }}
{{- $op := $s.operator }}
{{- $podEnv := $op.exporter_env | default dict }}
{{- if kindIs "string" $podEnv }}{{ $podEnv = fromJson $podEnv }}{{ end }}
{{- $podAuthOff := include "dicomvault.isFalse" (get $podEnv "DICOMVAULT_AUTH__ENABLED" | default $op.exporter_auth_enabled) }}
{{- if not (or $podAuthOff $op.exporter_auth_key_secret (hasKey $podEnv "DICOMVAULT_AUTH__JWKS_FILE") (hasKey $podEnv "DICOMVAULT_AUTH__PUBLIC_KEY_FILE")) }}
{{- $podsNoKeys = true }}
{{- end }}
{{- if and $catalogueVerifies (not $op.exporter_token_secret) (not (hasKey $podEnv "DICOMVAULT_CLIENT__TOKEN_FILE")) }}
{{- $noToken = append $noToken "stowExporter.tokenSecret" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $noKeys = sortAlpha $noKeys }}
{{- if $podsNoKeys }}{{ $noKeys = append $noKeys "the exporter pods the operator creates" }}{{ end }}
{{- $noToken = uniq $noToken | sortAlpha }}
{{- if or $noKeys $noToken }}
{{- $lines := list "Bearer tokens are required (auth.enabled, true by default), and these values are missing:" }}
{{- if $noKeys }}
{{- $lines = append $lines (printf "- auth.keySecret: an existing Secret with the identity provider's keys (a JWKS file; a PEM public key with auth.keyFormat=pem). Without it every API request to %s is refused (401)." (join ", " $noKeys)) }}
{{- end }}
{{- if $noToken }}
{{- $lines = append $lines (printf "- %s: each service's own bearer token for the catalogue, an existing Secret holding a JWT with the read scope (key token, or <service>.tokenSecretKey)%s. Without it the catalogue refuses every call of that service (401)." (join ", " $noToken) (ternary "; stowExporter.tokenSecret is also the token of the exporter pods the operator creates" "" (and (has "stowExporter.tokenSecret" $noToken) $root.Values.operator.enabled))) }}
{{- end }}
{{- $lines = append $lines "Set them (docs/security.md), or set auth.enabled=false to run without authentication (anyone who reaches the ports may read and store images)." }}
{{- fail (join "\n" $lines) }}
{{- end }}
{{- end }}
