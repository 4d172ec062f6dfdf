{{/*
The Deployment of one service: (dict "root" $ "key" "gateway"). Every service runs the same
image as `dicomvault run <component>`, reads DICOMVAULT_* variables rendered from its settings,
serves /metrics, /healthz (liveness) and /readyz (readiness: broker and database reached).
*/}}
{{- define "dicomvault.deployment" -}}
{{- $root := .root }}
{{- $key := .key }}
{{- $v := index $root.Values $key }}
{{- $svc := index (include "dicomvault.services" $root | fromYaml) $key }}
{{- $component := $svc.component }}
{{- $ctx := dict "root" $root "component" $component }}
{{- $settings := include "dicomvault.settings" (dict "root" $root "key" $key) | fromYaml }}
{{- $secretsDir := include "dicomvault.secretsDir" $root }}
{{- $cacheClaim := include "dicomvault.cacheClaimEnabled" $root }}
{{- $scheme := include "dicomvault.httpScheme" $root }}
{{- $tlsOn := $root.Values.tls.enabled }}
{{- $tokenSecret := and (include "dicomvault.callsCatalogue" (dict "key" $key)) $v.tokenSecret }}
{{- $authKeys := and (include "dicomvault.verifiesTokens" (dict "key" $key)) $root.Values.auth.enabled $root.Values.auth.keySecret -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "dicomvault.componentName" $ctx }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "dicomvault.componentLabels" $ctx | nindent 4 }}
spec:
  replicas: {{ $v.replicaCount }}
  revisionHistoryLimit: 5
  strategy:
    {{- toYaml $v.strategy | nindent 4 }}
  selector:
    matchLabels:
      {{- include "dicomvault.componentSelectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "dicomvault.componentSelectorLabels" $ctx | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/settings: {{ toJson $settings | sha256sum | trunc 16 }}
        {{- if eq $key "stowExporter" }}
        checksum/exporters: {{ toJson $v.exporters | sha256sum | trunc 16 }}
        {{- end }}
        {{- with (mergeOverwrite (deepCopy $root.Values.podAnnotations) (deepCopy $v.podAnnotations)) }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- if eq $key "operator" }}
      serviceAccountName: {{ include "dicomvault.operatorServiceAccountName" $root }}
      automountServiceAccountToken: true
      {{- else }}
      serviceAccountName: {{ include "dicomvault.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- end }}
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        {{- if kindIs "map" . }}
        - name: {{ .name }}
        {{- else }}
        - name: {{ . }}
        {{- end }}
        {{- end }}
      {{- end }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- if eq $key "gateway" }}
      {{- /* SIGTERM comes after preStop; then drain_s for what is in flight; then a margin */}}
      terminationGracePeriodSeconds: {{ add (int (default 60 $settings.gateway.drain_s)) (int $v.preStopSeconds) 15 }}
      {{- else }}
      terminationGracePeriodSeconds: 60
      {{- end }}
      containers:
        - name: {{ $component }}
          image: {{ include "dicomvault.image" (dict "root" $root "key" $key) | quote }}
          imagePullPolicy: {{ include "dicomvault.imagePullPolicy" (dict "root" $root "key" $key) }}
          args: ["run", {{ $component | quote }}]
          {{- if and (eq $key "gateway") $v.preStopSeconds }}
          lifecycle:
            preStop:
              # Endpoints drop this pod before SIGTERM starts the drain.
              exec: {command: ["sleep", {{ $v.preStopSeconds | toString | quote }}]}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $settings.http.port | int }}
              protocol: TCP
            {{- if eq $key "gateway" }}
            - name: dimse
              containerPort: {{ $settings.gateway.dimse_port | int }}
              protocol: TCP
            {{- else if eq $key "commitment" }}
            - name: dimse
              containerPort: {{ $settings.commitment.dimse_port | int }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "dicomvault.settingsEnv" (dict "prefix" "DICOMVAULT_" "settings" $settings) | trim | nindent 12 }}
            {{- with $root.Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet: {path: /healthz, port: http, scheme: {{ $scheme }}}
            periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet: {path: /healthz, port: http, scheme: {{ $scheme }}}
            periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet: {path: /readyz, port: http, scheme: {{ $scheme }}}
            periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $tlsOn }}
            - name: tls
              mountPath: {{ $secretsDir }}/tls
              readOnly: true
            {{- end }}
            {{- if $tokenSecret }}
            - name: token
              mountPath: {{ $secretsDir }}/token
              readOnly: true
            {{- end }}
            {{- if $authKeys }}
            - name: auth-keys
              mountPath: {{ $secretsDir }}/auth
              readOnly: true
            {{- end }}
            {{- if $svc.cache }}
            {{- if eq $root.Values.cache.backend "fs" }}
            - name: cache
              mountPath: {{ $root.Values.cache.mountPath }}
            {{- else if $root.Values.cache.s3.credentialsSecret }}
            - name: s3-credentials
              mountPath: {{ $secretsDir }}/s3
              readOnly: true
            {{- end }}
            {{- end }}
            {{- if $svc.database }}
            - name: database
              mountPath: {{ $secretsDir }}/database
              readOnly: true
            {{- end }}
            {{- if and (eq $key "audit") $v.syslog.caSecret }}
            - name: audit-ca
              mountPath: {{ $secretsDir }}/audit-ca
              readOnly: true
            {{- end }}
            {{- if eq $key "hsmArchiver" }}
            - name: hsm
              mountPath: {{ $root.Values.persistence.hsm.mountPath }}
            {{- end }}
            {{- if eq $key "opticalBurner" }}
            - name: optical
              mountPath: {{ $root.Values.persistence.optical.mountPath }}
            {{- end }}
            {{- if eq $key "stowExporter" }}
            - name: exporters
              mountPath: {{ include "dicomvault.exporterSpecDir" $root }}
              readOnly: true
            {{- range include "dicomvault.exporterSecretVolumes" $root | fromYamlArray }}
            - name: {{ .name }}
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
            {{- end }}
            {{- with $v.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- if $tlsOn }}
        - name: tls
          secret:
            secretName: {{ required "tls.secretName is required when tls.enabled is true" $root.Values.tls.secretName }}
        {{- end }}
        {{- if $tokenSecret }}
        - name: token
          secret:
            secretName: {{ $v.tokenSecret }}
            items:
              - key: {{ $v.tokenSecretKey }}
                path: {{ $v.tokenSecretKey }}
        {{- end }}
        {{- if $authKeys }}
        - name: auth-keys
          secret:
            secretName: {{ $root.Values.auth.keySecret }}
            items:
              - key: {{ $root.Values.auth.keySecretKey }}
                path: {{ $root.Values.auth.keySecretKey }}
        {{- end }}
        {{- if $svc.cache }}
        {{- if eq $root.Values.cache.backend "fs" }}
        - name: cache
          {{- if $cacheClaim }}
          persistentVolumeClaim:
            claimName: {{ include "dicomvault.claimName" (dict "root" $root "tier" "cache") }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- else if $root.Values.cache.s3.credentialsSecret }}
        - name: s3-credentials
          secret:
            secretName: {{ $root.Values.cache.s3.credentialsSecret }}
        {{- end }}
        {{- end }}
        {{- if $svc.database }}
        - name: database
          secret:
            secretName: {{ include "dicomvault.databaseSecretName" $root }}
            items:
              - key: {{ include "dicomvault.databaseSecretKey" $root }}
                path: url
        {{- end }}
        {{- if and (eq $key "audit") $v.syslog.caSecret }}
        - name: audit-ca
          secret:
            secretName: {{ $v.syslog.caSecret }}
            items:
              - key: {{ $v.syslog.caSecretKey }}
                path: {{ $v.syslog.caSecretKey }}
        {{- end }}
        {{- if eq $key "hsmArchiver" }}
        - name: hsm
          {{- if $root.Values.persistence.hsm.enabled }}
          persistentVolumeClaim:
            claimName: {{ include "dicomvault.claimName" (dict "root" $root "tier" "hsm") }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
        {{- if eq $key "opticalBurner" }}
        - name: optical
          {{- if $root.Values.persistence.optical.enabled }}
          persistentVolumeClaim:
            claimName: {{ include "dicomvault.claimName" (dict "root" $root "tier" "optical") }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
        {{- if eq $key "stowExporter" }}
        - name: exporters
          configMap:
            name: {{ include "dicomvault.componentName" $ctx }}
        {{- range include "dicomvault.exporterSecretVolumes" $root | fromYamlArray }}
        - name: {{ .name }}
          secret:
            secretName: {{ .secret }}
        {{- end }}
        {{- end }}
        {{- with $v.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with ($v.nodeSelector | default $root.Values.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($v.tolerations | default $root.Values.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with ($v.affinity | default $root.Values.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
