{{/*
The Service of one service: (dict "root" $ "key" "catalogue"). Port `http` serves the API,
/metrics and health; the gateway and commitment Services also carry DIMSE and can be
NodePort or LoadBalancer for modalities outside the cluster.
*/}}
{{- define "dicomvault.service" -}}
{{- $root := .root }}
{{- $key := .key }}
{{- $v := index $root.Values $key }}
{{- $svc := index (include "dicomvault.services" $root | fromYaml) $key }}
{{- $ctx := dict "root" $root "component" $svc.component }}
{{- $port := include "dicomvault.httpPort" (dict "root" $root "key" $key) }}
{{- $external := $v.service | default dict }}
{{- $type := $external.type | default "ClusterIP" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "dicomvault.componentName" $ctx }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "dicomvault.componentLabels" $ctx | nindent 4 }}
    dicomvault.io/metrics: "true"
    {{- with $external.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $external.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $type }}
  {{- if has $type (list "NodePort" "LoadBalancer") }}
  externalTrafficPolicy: {{ $external.externalTrafficPolicy | default "Cluster" }}
  {{- end }}
  {{- if eq $type "LoadBalancer" }}
  {{- with $external.loadBalancerClass }}
  loadBalancerClass: {{ . }}
  {{- end }}
  {{- with $external.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  selector:
    {{- include "dicomvault.componentSelectorLabels" $ctx | nindent 4 }}
  ports:
    {{- if $v.service }}
    - name: dimse
      port: {{ $external.dimsePort }}
      targetPort: dimse
      protocol: TCP
      {{- if and (has $type (list "NodePort" "LoadBalancer")) $external.nodePorts.dimse }}
      nodePort: {{ $external.nodePorts.dimse }}
      {{- end }}
    - name: http
      port: {{ $external.httpPort }}
      targetPort: http
      protocol: TCP
      {{- if and (has $type (list "NodePort" "LoadBalancer")) $external.nodePorts.http }}
      nodePort: {{ $external.nodePorts.http }}
      {{- end }}
    {{- else }}
    - name: http
      port: {{ $port }}
      targetPort: http
      protocol: TCP
    {{- end }}
{{- end }}
