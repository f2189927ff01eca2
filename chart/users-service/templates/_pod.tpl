{{/* Pod template shared by the Deployment and the Rollout. */}}
{{- define "users-service.podTemplate" -}}
{{- $grace := int .Values.shutdown.terminationGracePeriodSeconds }}
{{- /* Spread each ReplicaSet on its own (blue and green are counted separately). */}}
{{- $hashLabel := ternary "rollouts-pod-template-hash" "pod-template-hash" .Values.rollout.enabled }}
{{- $needed := add .Values.shutdown.preStopSleepSeconds .Values.shutdown.drainDelaySeconds .Values.shutdown.timeoutSeconds }}
{{- if le $grace (int $needed) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) must be greater than preStopSleepSeconds + drainDelaySeconds + timeoutSeconds (%d)" $grace (int $needed)) }}
{{- end }}
metadata:
  {{- /* No checksum annotation: the ConfigMap's name already changes with its content (users-service.configMapName). */}}
  {{- $envSecret := include "users-service.envSecretName" . }}
  {{- if or (and .Values.reloadOnSecretChange $envSecret) .Values.podAnnotations }}
  annotations:
    {{- if and .Values.reloadOnSecretChange $envSecret }}
    {{- /* Stakater Reloader reads workload and pod-template annotations alike: restart when DATABASE_URL/REDIS_URL change. */}}
    secret.reloader.stakater.com/reload: {{ $envSecret | quote }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  labels:
    {{- include "users-service.podLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "users-service.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $grace }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "users-service.podSecurityContext" . | nindent 4 }}
  containers:
    - name: users-service
      image: {{ include "users-service.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["node"]
      args: ["dist/service/main.js"]
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
        # /metrics only (METRICS_PORT); never reachable through the Service port or the Ingress.
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "users-service.configMapName" . }}
      env:
        {{- include "users-service.secretEnv" . | nindent 8 }}
        {{- include "users-service.tracingEnv" . | nindent 8 }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: {{ .Values.probes.startup.path }}
          port: http
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
      livenessProbe:
        httpGet:
          path: {{ .Values.probes.liveness.path }}
          port: http
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
      readinessProbe:
        httpGet:
          path: {{ .Values.probes.readiness.path }}
          port: http
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
      {{- if gt (int .Values.shutdown.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          {{- if .Values.shutdown.nativeSleepAction }}
          sleep:
            seconds: {{ int .Values.shutdown.preStopSleepSeconds }}
          {{- else }}
          exec:
            command: ["sleep", "{{ int .Values.shutdown.preStopSleepSeconds }}"]
          {{- end }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- include "users-service.containerSecurityContext" . | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if .Values.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ .Values.topologySpread.maxSkew }}
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: {{ .Values.topologySpread.zoneWhenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "users-service.selectorLabels" . | nindent 10 }}
      matchLabelKeys:
        - {{ $hashLabel }}
    - maxSkew: {{ .Values.topologySpread.maxSkew }}
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: {{ .Values.topologySpread.nodeWhenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "users-service.selectorLabels" . | nindent 10 }}
      matchLabelKeys:
        - {{ $hashLabel }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
