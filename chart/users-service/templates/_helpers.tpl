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

{{/* Labels of API objects (workload, Services). */}}
{{- define "users-service.apiLabels" -}}
{{ include "users-service.labels" . }}
app.kubernetes.io/component: api
{{- end }}

{{/*
Pod template labels. No helm.sh/chart: a chart bump that changes nothing in the pod must not restart every pod
(and on a Rollout, start a blue/green revision). The version label is the image tag, which changes the pod anyway;
OTEL_RESOURCE_ATTRIBUTES reads it through the downward API.
*/}}
{{- define "users-service.podLabels" -}}
{{ include "users-service.selectorLabels" . }}
app.kubernetes.io/version: {{ include "users-service.imageTag" . | quote }}
app.kubernetes.io/part-of: users-service
{{- end }}

{{/*
Label the ServiceMonitor selects the metrics Service by. Not app.kubernetes.io/instance: Argo CD's default label
tracking (2.x) overwrites that label on every object it applies with the Application name, and the selector would
match nothing. Nothing rewrites a label under the chart's own prefix.
*/}}
{{- define "users-service.scrapeLabels" -}}
users-service/release: {{ .Release.Name | quote }}
users-service/scrape: metrics
{{- end }}

{{/* Prometheus `job` of the scraped series: the ServiceMonitor's jobLabel reads app.kubernetes.io/name. Alerts and the dashboard use it. */}}
{{- define "users-service.prometheusJob" -}}
{{- include "users-service.name" . }}
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

{{/* repository@sha256:… when a digest is given (what was scanned, signed and attested), else repository:tag. */}}
{{- define "users-service.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "users-service.imageTag" .) }}
{{- end }}
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
Ordering of the secret plumbing and the migration, one mechanism per deploy path:

  Argo CD: sync waves inside the Sync phase. Secrets ServiceAccount (wave -3), SecretStore (-2), ExternalSecret
           (-1) are ORDINARY resources: Argo CD diffs them, a values change (sslmode, remoteKey, refreshInterval,
           roleArn, region) makes the app OutOfSync and is applied, and drift is healed. Argo CD waits for each
           wave to be healthy (its built-in checks for SecretStore/ExternalSecret wait for Ready/SecretSynced),
           then runs the migration Job as a `Sync` hook in wave 0, then applies the workload in wave 1.
  Helm:    (skaffold dev, plain helm install) ignores the Argo CD annotations. The Secrets objects are ordinary
           release resources; the migration Job is a Helm hook: pre-install/pre-upgrade when the Secret already
           exists before the release (database.existingSecret), post-install/pre-upgrade when the release itself
           creates it through the ExternalSecret (the Job's pod waits in CreateContainerConfigError until ESO has
           written the Secret; the kubelet retries, so it starts as soon as the Secret exists).
Call with (dict "wave" N).
*/}}
{{- define "users-service.syncWave" -}}
argocd.argoproj.io/sync-wave: {{ .wave | quote }}
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

{{/* Args the Rollout passes to the AnalysisTemplates: the Prometheus queries' scope (none without them). */}}
{{- define "users-service.analysisArgs" -}}
{{- if .Values.metrics.serviceMonitor.enabled }}
- name: service-name
  value: {{ include "users-service.metricsServiceName" . }}
- name: namespace
  value: {{ .Release.Namespace }}
- name: pod-template-hash
  valueFrom:
    podTemplateHashValue: Latest
{{- end }}
{{- end }}

{{/*
Per-release ConfigMap: the name carries a hash of the data, so every ReplicaSet keeps reading the config it was
created with (old pods restarting mid-rollout, an abort, a rollback or undo bring the old config back with them).
Neither Argo CD (Prune=false) nor Helm (resource-policy keep) deletes a superseded one; see the chart README for
the clean-up of ConfigMaps no ReplicaSet references any more.
*/}}
{{- define "users-service.configMapName" -}}
{{- $hash := include "users-service.configData" . | sha256sum | trunc 10 }}
{{- printf "%s-config-%s" (include "users-service.fullname" . | trunc 45 | trimSuffix "-") $hash }}
{{- end }}

{{/* The ConfigMap's data (also hashed into its name). */}}
{{- define "users-service.configData" -}}
PORT: {{ .Values.containerPort | quote }}
METRICS_PORT: {{ .Values.metrics.port | quote }}
NODE_OPTIONS: {{ .Values.nodeOptions | quote }}
MALLOC_ARENA_MAX: {{ .Values.mallocArenaMax | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
TRUST_PROXY_HOPS: {{ .Values.config.trustProxyHops | quote }}
CORS_ORIGINS: {{ join "," .Values.config.corsOrigins | quote }}
RATE_LIMIT_RPS: {{ .Values.config.rateLimit.rps | quote }}
RATE_LIMIT_BURST: {{ .Values.config.rateLimit.burst | quote }}
RATE_LIMIT_SCOPE: {{ .Values.config.rateLimit.scope | quote }}
RATE_LIMIT_REDIS_TIMEOUT: {{ printf "%dms" (int .Values.config.rateLimit.redisTimeoutMs) | quote }}
DB_POOL_MAX: {{ .Values.config.dbPool.max | quote }}
DB_POOL_MIN: {{ .Values.config.dbPool.min | quote }}
DB_CONN_MAX_LIFETIME: {{ printf "%ds" (int .Values.config.dbPool.connMaxLifetimeSeconds) | quote }}
DB_ACQUIRE_TIMEOUT: {{ printf "%ds" (int .Values.config.dbPool.acquireTimeoutSeconds) | quote }}
SHUTDOWN_DRAIN_DELAY: {{ printf "%ds" (int .Values.shutdown.drainDelaySeconds) | quote }}
SHUTDOWN_TIMEOUT: {{ printf "%ds" (int .Values.shutdown.timeoutSeconds) | quote }}
{{- if and .Values.redis.url (not (include "users-service.redisFromSecret" .)) }}
REDIS_URL: {{ .Values.redis.url | quote }}
{{- end }}
{{- include "users-service.authEnv" . }}
{{- if .Values.tracing.enabled }}
OTEL_SERVICE_NAME: {{ include "users-service.name" . | quote }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .Values.tracing.endpoint | quote }}
OTEL_TRACES_SAMPLER: parentbased_traceidratio
OTEL_TRACES_SAMPLER_ARG: {{ .Values.tracing.sampleRatio | toString | quote }}
{{- end }}
{{- end }}

{{/* AUTH_* settings of the service. */}}
{{- define "users-service.authEnv" -}}
{{- if .Values.auth.enabled }}
AUTH_ISSUER: {{ required "auth.enabled needs auth.issuer" .Values.auth.issuer | quote }}
AUTH_AUDIENCE: {{ required "auth.enabled needs auth.audience" .Values.auth.audience | quote }}
{{- with .Values.auth.jwksUrl }}
AUTH_JWKS_URL: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Env entries from the downward API for the trace resource: namespace, pod and version (the pod's version label,
which is the image tag). Kubernetes expands $(VAR) from variables defined earlier in the list.
*/}}
{{- define "users-service.tracingEnv" -}}
{{- if .Values.tracing.enabled }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: SERVICE_VERSION
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['app.kubernetes.io/version']
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),service.version=$(SERVICE_VERSION){{ with .Values.environment }},deployment.environment.name={{ . }}{{ end }}"
{{- end }}
{{- end }}

{{/*
What each AnalysisTemplate measures ("" = nothing, no template, no reference from the Rollout):
  pre  = the smoke test (a Job against the preview Service; needs nothing but the cluster) and, when the
         ServiceMonitor scrapes the pods, the Prometheus success ratio and p99 of the preview pods;
  post = the Prometheus queries on the pods now serving user traffic (only with the ServiceMonitor).
So `--set rollout.enabled=true` on the defaults (no Prometheus Operator) renders a Rollout gated by the smoke test.
*/}}
{{- define "users-service.analysisPre" -}}
{{- $a := .Values.rollout.analysis }}
{{- if and .Values.rollout.enabled $a.enabled $a.prePromotion.enabled (or $a.smoke.enabled .Values.metrics.serviceMonitor.enabled) }}true{{ end }}
{{- end }}
{{- define "users-service.analysisPost" -}}
{{- $a := .Values.rollout.analysis }}
{{- if and .Values.rollout.enabled $a.enabled $a.postPromotion.enabled .Values.metrics.serviceMonitor.enabled }}true{{ end }}
{{- end }}

{{/* Secret with the smoke test's OAuth client (SMOKE_CLIENT_ID, SMOKE_CLIENT_SECRET), or "" when the API needs no token. */}}
{{- define "users-service.smokeSecretName" -}}
{{- $c := .Values.rollout.analysis.smoke.credentials }}
{{- if .Values.auth.enabled }}
{{- if $c.existingSecret }}
{{- $c.existingSecret }}
{{- else if and .Values.externalSecret.enabled $c.remoteKey }}
{{- printf "%s-smoke" (include "users-service.fullname" .) }}
{{- else }}
{{- fail "auth.enabled with the smoke test needs its OAuth client: set rollout.analysis.smoke.credentials.remoteKey (with externalSecret.enabled) or rollout.analysis.smoke.credentials.existingSecret" }}
{{- end }}
{{- end }}
{{- end }}

{{/* JobSpec of the smoke test (an Argo Rollouts Job metric): the image under test calls the preview Service. */}}
{{- define "users-service.smokeJobSpec" -}}
{{- $s := .Values.rollout.analysis.smoke }}
{{- $secret := include "users-service.smokeSecretName" . -}}
backoffLimit: 0
activeDeadlineSeconds: {{ $s.activeDeadlineSeconds }}
ttlSecondsAfterFinished: 3600
template:
  metadata:
    labels:
      {{- include "users-service.labels" . | nindent 6 }}
      app.kubernetes.io/component: smoke
  spec:
    restartPolicy: Never
    serviceAccountName: {{ include "users-service.serviceAccountName" . }}
    automountServiceAccountToken: false
    enableServiceLinks: false
    {{- with .Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- include "users-service.podSecurityContext" . | nindent 6 }}
    containers:
      - name: smoke
        image: {{ include "users-service.image" . | quote }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        command: ["node"]
        args: ["dist/service/smoke.js"]
        env:
          - name: SMOKE_BASE_URL
            value: {{ printf "http://%s.%s.svc:%d" (include "users-service.previewServiceName" .) .Release.Namespace (int .Values.service.port) | quote }}
          - name: SMOKE_WRITE_CYCLE
            value: {{ $s.writeCycle | quote }}
          - name: SMOKE_TIMEOUT
            value: {{ printf "%ds" (int $s.requestTimeoutSeconds) | quote }}
          {{- if .Values.auth.enabled }}
          - name: AUTH_ISSUER
            value: {{ .Values.auth.issuer | quote }}
          - name: AUTH_AUDIENCE
            value: {{ .Values.auth.audience | quote }}
          {{- end }}
          {{- with .Values.extraEnv }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
          {{- if $secret }}
          - name: SMOKE_CLIENT_ID
            valueFrom:
              secretKeyRef:
                name: {{ $secret }}
                key: SMOKE_CLIENT_ID
          - name: SMOKE_CLIENT_SECRET
            valueFrom:
              secretKeyRef:
                name: {{ $secret }}
                key: SMOKE_CLIENT_SECRET
          {{- end }}
        resources:
          {{- toYaml $s.resources | nindent 10 }}
        securityContext:
          {{- include "users-service.containerSecurityContext" . | nindent 10 }}
        {{- with .Values.extraVolumeMounts }}
        volumeMounts:
          {{- toYaml . | nindent 10 }}
        {{- end }}
    {{- with .Values.extraVolumes }}
    volumes:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
