{{/* Pod-level settings shared by the central Deployment and the sidecar demo. Input: root. */}}
{{- define "iam-sidecar.podSpecCommon" -}}
serviceAccountName: {{ include "iam-sidecar.serviceAccountName" . }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "iam-sidecar.podAnnotations" -}}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- if and .Values.world.checksumAnnotation .Values.world.content }}
checksum/world: {{ .Values.world.content | sha256sum }}
{{- end }}
{{- end }}
