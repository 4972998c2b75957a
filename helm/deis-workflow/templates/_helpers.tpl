{{/*
Names, labels, images and the settings several templates share.
*/}}

{{/* The chart's name. */}}
{{- define "deis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object's name: the release name (release `deis` gets
deis-controller, deis-builder, ... as in Deis Workflow), or fullnameOverride.
Kept short enough that "<prefix>-fluent-bit" fits in 63 characters.
*/}}
{{- define "deis.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of a component's objects: (dict "root" $ "component" "controller"). */}}
{{- define "deis.componentName" -}}
{{- printf "%s-%s" (include "deis.fullname" .root) .component -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "deis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "deis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deis-workflow
{{- end -}}

{{/* Labels of a component's objects: (dict "root" $ "component" "controller"). */}}
{{- define "deis.componentLabels" -}}
{{ include "deis.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Selector labels of a component's pods: (dict "root" $ "component" "controller"). */}}
{{- define "deis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deis.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The deis-workflow image reference. */}}
{{- define "deis.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets of every pod. */}}
{{- define "deis.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Cluster-internal host names of the chart's Services. */}}
{{- define "deis.serviceHost" -}}
{{- printf "%s.%s.svc" (include "deis.componentName" .) .root.Release.Namespace -}}
{{- end -}}

{{/* Fixed ports inside the pods (the binary's defaults, bound on 0.0.0.0). */}}
{{- define "deis.port.controller" -}}8000{{- end -}}
{{- define "deis.port.registry" -}}5000{{- end -}}
{{- define "deis.port.xds" -}}18000{{- end -}}
{{- define "deis.port.builder" -}}2222{{- end -}}
{{- define "deis.port.logger" -}}18001{{- end -}}
{{- define "deis.port.forward" -}}24224{{- end -}}
{{- define "deis.port.postgresql" -}}5432{{- end -}}
{{- define "deis.port.metrics.controller" -}}9100{{- end -}}
{{- define "deis.port.metrics.builder" -}}9101{{- end -}}
{{- define "deis.port.metrics.logger" -}}9103{{- end -}}
{{- define "deis.port.fluentBit" -}}2020{{- end -}}

{{/* The platform domain the controller is given. */}}
{{- define "deis.platformDomain" -}}
{{- .Values.platformDomain | default "localhost" -}}
{{- end -}}

{{/* The host name git remotes show. */}}
{{- define "deis.builderHost" -}}
{{- .Values.builder.host | default (printf "deis-builder.%s" (include "deis.platformDomain" .)) -}}
{{- end -}}

{{/*
The platform secret: the given value, else the one already in the cluster
(upgrades keep it), else a new random one. Helm renders templates once per
install or upgrade, so every template that includes this sees one value.
*/}}
{{- define "deis.platformSecret" -}}
{{- if .Values.platformSecret.value -}}
{{- .Values.platformSecret.value | trim -}}
{{- else -}}
{{- $name := include "deis.componentName" (dict "root" . "component" "platform") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- if and $existing $existing.data (index $existing.data "platform-secret") -}}
{{- index $existing.data "platform-secret" | b64dec -}}
{{- else -}}
{{- /* One value per render, shared by every template through a global. */ -}}
{{- if not (hasKey .Values.platformSecret "_generated") -}}
{{- $_ := set .Values.platformSecret "_generated" (randAlphaNum 48) -}}
{{- end -}}
{{- .Values.platformSecret._generated -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A credential derived from the platform secret for one purpose, exactly as
deis_auth::PlatformSecret::derive computes it:
hex(sha256("deis-workflow/" + purpose + "/" + secret)).
*/}}
{{- define "deis.derivedToken" -}}
{{- printf "deis-workflow/%s/%s" .purpose (include "deis.platformSecret" .root) | sha256sum -}}
{{- end -}}

{{/* The trial database's password: given, kept from the cluster, or new. */}}
{{- define "deis.postgresqlPassword" -}}
{{- if .Values.postgresql.password -}}
{{- .Values.postgresql.password -}}
{{- else -}}
{{- $name := include "deis.componentName" (dict "root" . "component" "postgresql") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- if and $existing $existing.data (index $existing.data "password") -}}
{{- index $existing.data "password" | b64dec -}}
{{- else -}}
{{- if not (hasKey .Values.postgresql "_generatedPassword") -}}
{{- $_ := set .Values.postgresql "_generatedPassword" (randAlphaNum 32) -}}
{{- end -}}
{{- .Values.postgresql._generatedPassword -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Refuses values the platform cannot run with. */}}
{{- define "deis.validate" -}}
{{- if and .Values.platformSecret.value (lt (len (trim .Values.platformSecret.value)) 32) -}}
{{- fail "platformSecret.value must be at least 32 characters (or empty, to generate one)" -}}
{{- end -}}
{{- if not (has .Values.registrationMode (list "enabled" "disabled" "admin_only")) -}}
{{- fail (printf "registrationMode must be enabled, disabled or admin_only, not %q" .Values.registrationMode) -}}
{{- end -}}
{{- if not (has .Values.controller.runtime (list "none" "local" "kubernetes")) -}}
{{- fail (printf "controller.runtime must be kubernetes, local or none, not %q" .Values.controller.runtime) -}}
{{- end -}}
{{- if and .Values.postgresql.external.enabled (not .Values.postgresql.external.existingSecret) -}}
{{- fail "postgresql.external.enabled needs postgresql.external.existingSecret: the Secret holding the database URL" -}}
{{- end -}}
{{- if and .Values.objectStorage.external.enabled (not (regexMatch "^(s3|s3a|gs|az|azure|abfs|abfss)://[^/]+" .Values.objectStorage.external.url)) -}}
{{- fail (printf "objectStorage.external.url must be s3://bucket, gs://bucket or az://container (with an optional /prefix), not %q" .Values.objectStorage.external.url) -}}
{{- end -}}
{{- if not (has .Values.router.service.externalTrafficPolicy (list "Cluster" "Local")) -}}
{{- fail "router.service.externalTrafficPolicy must be Cluster or Local" -}}
{{- end -}}
{{- if not (has .Values.router.service.type (list "LoadBalancer" "NodePort")) -}}
{{- fail "router.service.type must be LoadBalancer or NodePort" -}}
{{- end -}}
{{- if not (has .Values.controller.service.type (list "ClusterIP" "LoadBalancer" "NodePort")) -}}
{{- fail "controller.service.type must be ClusterIP, LoadBalancer or NodePort" -}}
{{- end -}}
{{- if lt (int .Values.router.replicaCount) 1 -}}
{{- fail "router.replicaCount must be at least 1" -}}
{{- end -}}
{{- $ports := list (int .Values.router.ports.http) (int .Values.router.ports.https) (int .Values.router.ports.builder) -}}
{{- if ne (len ($ports | uniq)) 3 -}}
{{- fail "router.ports.http, https and builder must differ" -}}
{{- end -}}
{{- range $ports -}}
{{- /* Envoy may share the controller's pod: its ports and Envoy's admin port are taken. */ -}}
{{- if or (lt . 1) (gt . 65535) (has . (list 5000 8000 9100 9901 18000)) -}}
{{- fail (printf "router.ports must be 1-65535 and not 5000, 8000, 9100, 9901 or 18000 (taken in the controller's pod), not %d" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Environment shared by the controller and the builder: the object storage.
*/}}
{{- define "deis.objectStoreEnv" -}}
- name: DEIS_OBJECT_STORE
{{- if .Values.objectStorage.external.enabled }}
  value: {{ .Values.objectStorage.external.url | quote }}
{{- else }}
  value: "file:///var/lib/deis-objects"
{{- end }}
{{- end -}}

{{/* envFrom of the object storage's credentials, when there are any. */}}
{{- define "deis.objectStoreEnvFrom" -}}
{{- if and .Values.objectStorage.external.enabled .Values.objectStorage.external.existingSecret -}}
envFrom:
  - secretRef:
      name: {{ .Values.objectStorage.external.existingSecret }}
{{- end }}
{{- end -}}

{{/* The platform secret as an environment variable. */}}
{{- define "deis.platformSecretEnv" -}}
- name: DEIS_PLATFORM_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "deis.componentName" (dict "root" . "component" "platform") }}
      key: platform-secret
{{- end -}}

{{/* RUST_LOG, when set. */}}
{{- define "deis.logLevelEnv" -}}
{{- with .Values.logLevel -}}
- name: RUST_LOG
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The database URL as an environment variable. */}}
{{- define "deis.databaseUrlEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
{{- if .Values.postgresql.external.enabled }}
      name: {{ .Values.postgresql.external.existingSecret }}
      key: {{ .Values.postgresql.external.key }}
{{- else }}
      name: {{ include "deis.componentName" (dict "root" . "component" "postgresql") }}
      key: database-url
{{- end }}
{{- end -}}

{{/* The restricted container security context of the platform's own processes. */}}
{{- define "deis.restrictedSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The pod security context of the deis-workflow pods. */}}
{{- define "deis.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* nodeSelector, tolerations and affinity of a pod from a component's values. */}}
{{- define "deis.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* "true" when builds run as Kubernetes Jobs (see builder.jobs.enabled). */}}
{{- define "deis.buildJobs" -}}
{{- $jobs := toString .Values.builder.jobs.enabled -}}
{{- if or (eq $jobs "true") (and (eq $jobs "auto") (eq .Values.controller.runtime "kubernetes") .Values.objectStorage.external.enabled) -}}
true
{{- end -}}
{{- end -}}

{{/* "true" when the builder talks to the Kubernetes API (build Jobs). */}}
{{- define "deis.builderUsesApi" -}}
{{- if and .Values.rbac.create (or .Values.rbac.kubernetesRuntime (eq .Values.controller.runtime "kubernetes") (include "deis.buildJobs" .)) -}}
true
{{- end -}}
{{- end -}}
