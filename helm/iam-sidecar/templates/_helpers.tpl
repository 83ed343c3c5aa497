{{/*
Names. They depend only on the release and the iam-sidecar values, so that a parent chart that
includes the named templates below gets the same names as this chart's own ConfigMaps/Secrets.
*/}}
{{- define "iam-sidecar.name" -}}
{{- default "iam-sidecar" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Input: dict "values" <iam-sidecar values> "root" <top context>. */}}
{{- define "iam-sidecar.fullnameFor" -}}
{{- if .values.fullnameOverride }}
{{- .values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "iam-sidecar" .root.Release.Name }}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-iam-sidecar" .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "iam-sidecar.fullname" -}}
{{- include "iam-sidecar.fullnameFor" (dict "values" .Values "root" .) }}
{{- end }}

{{- define "iam-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iam-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iam-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "iam-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "iam-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "iam-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* This chart's appVersion, from its own context or from a parent chart's (as dependency). */}}
{{- define "iam-sidecar.appVersion" -}}
{{- if eq .Chart.Name "iam-sidecar" }}
{{- .Chart.AppVersion }}
{{- else }}
{{- with .Subcharts }}{{ with index . "iam-sidecar" }}{{ .Chart.AppVersion }}{{ end }}{{ end }}
{{- end }}
{{- end }}

{{- define "iam-sidecar.worldConfigMap" -}}
{{- .values.world.existingConfigMap | default (printf "%s-world" (include "iam-sidecar.fullnameFor" .)) }}
{{- end }}

{{- define "iam-sidecar.jwksConfigMap" -}}
{{- .values.jwks.existingConfigMap | default (printf "%s-jwks" (include "iam-sidecar.fullnameFor" .)) }}
{{- end }}

{{- define "iam-sidecar.keysSecret" -}}
{{- .values.signing.existingSecret | default (printf "%s-keys" (include "iam-sidecar.fullnameFor" .)) }}
{{- end }}

{{- define "iam-sidecar.hasWorld" -}}
{{- if or .values.world.content .values.world.existingConfigMap }}true{{ end }}
{{- end }}
{{- define "iam-sidecar.hasKeys" -}}
{{- if or .values.signing.keySet .values.signing.existingSecret }}true{{ end }}
{{- end }}
{{- define "iam-sidecar.hasJwks" -}}
{{- if or .values.jwks.content .values.jwks.existingConfigMap }}true{{ end }}
{{- end }}
{{- define "iam-sidecar.hasTls" -}}
{{- if and (eq .values.mode "central") .values.tls.existingSecret }}true{{ end }}
{{- end }}

{{/*
"iam-sidecar.container": the sidecar's container, one YAML list item.
Input: dict "values" <the iam-sidecar values> "root" <the including chart's top context, `$`>.
  In this chart: (dict "values" .Values "root" $). In a parent chart that depends on iam-sidecar:
  (dict "values" (index .Values "iam-sidecar") "root" $). mode "sidecar" keeps both ports on
  127.0.0.1; mode "central" listens on the pod IP. With values.sidecar.native it renders
  restartPolicy: Always, for use under initContainers.
Probes: kubelet probes reach the pod IP and present no client certificate, so in both modes they
are gRPC health checks on the plaintext health-only listener (--health-listen, ports.health).
The startup probe is GET /readyz on the same listener: 200 only once the gRPC and HTTP ports both
listen, so liveness waits for it and, for a native sidecar, so do the application containers.
*/}}
{{- define "iam-sidecar.container" -}}
{{- $v := .values -}}
{{- $sidecar := eq $v.mode "sidecar" -}}
{{- $host := ternary "127.0.0.1" "0.0.0.0" $sidecar -}}
{{- $tls := include "iam-sidecar.hasTls" . -}}
- name: iam-sidecar
  image: {{ printf "%s:%s" $v.image.repository ($v.image.tag | default (include "iam-sidecar.appVersion" .root)) | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if and $sidecar $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args:
    - serve
    - --listen={{ $host }}:{{ $v.ports.grpc }}
    - --http-listen={{ $host }}:{{ $v.ports.http }}
    - --health-listen=0.0.0.0:{{ $v.ports.health }}
    - --workers={{ $v.workers }}
    {{- if gt (int $v.workers) 1 }}
    - --metrics-dir=/var/run/iam-sidecar/metrics
    {{- end }}
    - --log-level={{ $v.logLevel }}
    {{- if include "iam-sidecar.hasWorld" . }}
    - --config=/etc/iam-sidecar/world/world.yaml
    {{- end }}
    {{- if include "iam-sidecar.hasKeys" . }}
    - --keys=/etc/iam-sidecar/keys/{{ $v.signing.key }}
    {{- end }}
    {{- if $tls }}
    - --http-tls-cert=/etc/iam-sidecar/tls/tls.crt
    - --http-tls-key=/etc/iam-sidecar/tls/tls.key
    {{- end }}
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- with $v.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- if not $sidecar }}
    - name: grpc
      containerPort: {{ $v.ports.grpc }}
      protocol: TCP
    - name: http
      containerPort: {{ $v.ports.http }}
      protocol: TCP
    {{- end }}
    - name: health
      containerPort: {{ $v.ports.health }}
      protocol: TCP
  {{- range $kind := list "liveness" "readiness" }}
  {{ $kind }}Probe:
    grpc:
      port: {{ $v.ports.health }}
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  {{- end }}
  startupProbe:
    httpGet:
      path: /readyz
      port: {{ $v.ports.health }}
    periodSeconds: 1
    timeoutSeconds: 2
    failureThreshold: 60
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  volumeMounts:
    - name: iam-sidecar-tmp
      mountPath: /tmp
    {{- if gt (int $v.workers) 1 }}
    - name: iam-sidecar-metrics
      mountPath: /var/run/iam-sidecar/metrics
    {{- end }}
    {{- if include "iam-sidecar.hasWorld" . }}
    - name: iam-sidecar-world
      mountPath: /etc/iam-sidecar/world
      readOnly: true
    {{- end }}
    {{- if include "iam-sidecar.hasKeys" . }}
    - name: iam-sidecar-keys
      mountPath: /etc/iam-sidecar/keys
      readOnly: true
    {{- end }}
    {{- if include "iam-sidecar.hasJwks" . }}
    - name: iam-sidecar-jwks
      mountPath: /etc/iam-sidecar/oidc
      readOnly: true
    {{- end }}
    {{- if $tls }}
    - name: iam-sidecar-tls
      mountPath: /etc/iam-sidecar/tls
      readOnly: true
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
"iam-sidecar.volumes": the pod volumes the container above mounts, plus the projected
service-account token for pod identity (mounted into application containers by
"iam-sidecar.clientVolumeMounts"). YAML list items. Input: as "iam-sidecar.container".
*/}}
{{- define "iam-sidecar.volumes" -}}
{{- $v := .values -}}
- name: iam-sidecar-tmp
  emptyDir: {}
{{- if gt (int $v.workers) 1 }}
{{- /* the workers' metric files (--metrics-dir); the supervisor empties it at start */}}
{{- $md := $v.metricsDir | default dict }}
{{- $emptyDir := dict }}
{{- with $md.medium }}{{ $_ := set $emptyDir "medium" . }}{{ end }}
{{- with $md.sizeLimit }}{{ $_ := set $emptyDir "sizeLimit" . }}{{ end }}
- name: iam-sidecar-metrics
  emptyDir: {{ toJson $emptyDir }}
{{- end }}
{{- if include "iam-sidecar.hasWorld" . }}
- name: iam-sidecar-world
  configMap:
    name: {{ include "iam-sidecar.worldConfigMap" . }}
{{- end }}
{{- if include "iam-sidecar.hasKeys" . }}
- name: iam-sidecar-keys
  secret:
    secretName: {{ include "iam-sidecar.keysSecret" . }}
{{- end }}
{{- if include "iam-sidecar.hasJwks" . }}
- name: iam-sidecar-jwks
  configMap:
    name: {{ include "iam-sidecar.jwksConfigMap" . }}
{{- end }}
{{- if include "iam-sidecar.hasTls" . }}
- name: iam-sidecar-tls
  secret:
    secretName: {{ $v.tls.existingSecret }}
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- if eq $v.mode "sidecar" }}
- name: iam-sidecar-pod-identity-token
  projected:
    sources:
      - serviceAccountToken:
          path: eks-pod-identity-token
          audience: {{ $v.podIdentity.audience }}
          expirationSeconds: {{ int $v.podIdentity.expirationSeconds }}
{{- end }}
{{- end }}

{{/*
"iam-sidecar.clientEnv": the environment an application container needs so that the AWS SDKs'
container credential provider asks the sidecar (docs/KUBERNETES.md, §1.3). YAML list items for
`env:`. Input: as "iam-sidecar.container" (mode sidecar: the loopback HTTP port).
*/}}
{{- define "iam-sidecar.clientEnv" -}}
- name: AWS_CONTAINER_CREDENTIALS_FULL_URI
  value: {{ printf "http://127.0.0.1:%v/v1/credentials" .values.ports.http | quote }}
- name: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
  value: /var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token
{{- end }}

{{/* "iam-sidecar.clientVolumeMounts": the token mount for `volumeMounts:`. Input: as above. */}}
{{- define "iam-sidecar.clientVolumeMounts" -}}
- name: iam-sidecar-pod-identity-token
  mountPath: /var/run/secrets/pods.eks.amazonaws.com/serviceaccount
  readOnly: true
{{- end }}
