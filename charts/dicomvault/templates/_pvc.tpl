{{/* The claim of one tier: (dict "root" $ "tier" "cache") */}}
{{- define "dicomvault.pvc" -}}
{{- $p := index .root.Values.persistence .tier -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "dicomvault.claimName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "dicomvault.componentLabels" (dict "root" .root "component" .tier) | nindent 4 }}
  {{- with $p.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  accessModes:
    {{- toYaml $p.accessModes | nindent 4 }}
  {{- with $p.storageClass }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ $p.size }}
{{- end }}
