{{/* Chart name (app.kubernetes.io/name, and the Prometheus job label through the ServiceMonitor jobLabel). */}}
{{- define "users-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release name when it already contains the chart name (release users-service -> users-service). */}}
{{- define "users-service.fullname" -}}
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

{{- define "users-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries (no component: each object adds its own). */}}
{{- define "users-service.labels" -}}
helm.sh/chart: {{ include "users-service.chart" . }}
app.kubernetes.io/name: {{ include "users-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "users-service.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: users-service
{{- end }}

{{/*
Selector labels of the API pods. component=api keeps the migration Job's pods (component=migration)
out of every Service and out of the PDB.
*/}}
{{- define "users-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "users-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{/* Labels of API objects (workload, pods, Services). */}}
{{- define "users-service.apiLabels" -}}
{{ include "users-service.labels" . }}
app.kubernetes.io/component: api
{{- end }}

{{- define "users-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "users-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "users-service.previewServiceName" -}}
{{- printf "%s-preview" (include "users-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "users-service.metricsServiceName" -}}
{{- printf "%s-metrics" (include "users-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Image tag: values, else appVersion; `latest` is refused. */}}
{{- define "users-service.imageTag" -}}
{{- $tag := toString (default .Chart.AppVersion .Values.image.tag) }}
{{- if eq $tag "latest" }}
{{- fail "image.tag must be an immutable version (git sha or semver), not latest" }}
{{- end }}
{{- $tag }}
{{- end }}

{{- define "users-service.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (include "users-service.imageTag" .) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* Secret holding DATABASE_URL (and REDIS_URL), or "" when none is configured. */}}
{{- define "users-service.envSecretName" -}}
{{- if .Values.externalSecret.enabled }}
{{- default (printf "%s-env" (include "users-service.fullname" .)) .Values.externalSecret.targetSecretName }}
{{- else if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "users-service.databaseUrlKey" -}}
{{- if .Values.externalSecret.enabled }}DATABASE_URL{{ else }}{{ .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{/* REDIS_URL comes from the ExternalSecret when a redis remoteKey is configured. */}}
{{- define "users-service.redisFromSecret" -}}
{{- if and .Values.externalSecret.enabled .Values.externalSecret.redis.remoteKey }}true{{ end }}
{{- end }}

{{- define "users-service.secretStoreName" -}}
{{- if .Values.externalSecret.secretStore.create }}
{{- default (printf "%s-aws" (include "users-service.fullname" .)) .Values.externalSecret.secretStore.name }}
{{- else }}
{{- required "externalSecret.secretStore.name is required when secretStore.create is false" .Values.externalSecret.secretStore.name }}
{{- end }}
{{- end }}

{{- define "users-service.migrationsEnabled" -}}
{{- if and .Values.migrations.enabled (include "users-service.envSecretName" .) }}true{{ end }}
{{- end }}

{{/*
Hook annotations for objects the migration Job depends on (secrets ServiceAccount, SecretStore,
ExternalSecret, the Job's ServiceAccount). Call with (dict "ctx" $ "weight" N).

The ordering trap: the migration Job is a pre-install/pre-upgrade (Helm) and PreSync (Argo CD) hook, so it
runs BEFORE any ordinary resource of the release exists. On a first install the ExternalSecret (and the
Secret ESO writes from it) would not exist yet, the Job's pod would sit in CreateContainerConfigError and
the sync would fail at activeDeadlineSeconds. So these objects are hooks of the same phase with a lower
weight/wave: Helm creates hooks in weight order; Argo CD runs PreSync hooks wave by wave and waits for each
wave to be healthy (its built-in health checks for SecretStore/ExternalSecret wait for Ready/SecretSynced),
so the Secret exists before the Job's pod starts.
Delete policy before-hook-creation only: they must outlive the hook phase (the app pods use the Secret).
The ExternalSecret uses creationPolicy Orphan so re-creating it on every sync never deletes the live Secret.
*/}}
{{- define "users-service.preHookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation
argocd.argoproj.io/hook: PreSync
argocd.argoproj.io/sync-wave: {{ .weight | quote }}
argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
{{- end }}

{{/* Restricted-PSS container securityContext (shared by the app and the migration container). */}}
{{- define "users-service.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "users-service.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Env entries from the Secret (DATABASE_URL, REDIS_URL). Never a literal value. */}}
{{- define "users-service.secretEnv" -}}
{{- $secret := include "users-service.envSecretName" . }}
{{- if $secret }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "users-service.databaseUrlKey" . }}
{{- end }}
{{- if include "users-service.redisFromSecret" . }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: REDIS_URL
{{- end }}
{{- end }}

{{/* Args the Rollout passes to both AnalysisTemplates. */}}
{{- define "users-service.analysisArgs" -}}
- name: service-name
  value: {{ include "users-service.metricsServiceName" . }}
- name: namespace
  value: {{ .Release.Namespace }}
- name: pod-template-hash
  valueFrom:
    podTemplateHashValue: Latest
{{- end }}
