{{/*
Envoy, the edge router: its init container, container and volumes, shared by
the router's own Deployment and (with controller.runtime local) the
controller's pod. Envoy must share the pod of whatever runs the apps: the
local runtime publishes their endpoints on the pod's loopback.
*/}}

{{/* "true" when Envoy runs in the controller's pod (controller.runtime local). */}}
{{- define "deis.router.colocated" -}}
{{- if eq .Values.controller.runtime "local" -}}true{{- end -}}
{{- end -}}

{{/* The routing feed's address, as Envoy reaches it. */}}
{{- define "deis.router.xdsHost" -}}
{{- if include "deis.router.colocated" . -}}
127.0.0.1
{{- else -}}
{{- include "deis.serviceHost" (dict "root" . "component" "xds") -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of the pods Envoy runs in. */}}
{{- define "deis.router.selectorLabels" -}}
{{- if include "deis.router.colocated" . -}}
{{- include "deis.selectorLabels" (dict "root" . "component" "controller") -}}
{{- else -}}
{{- include "deis.selectorLabels" (dict "root" . "component" "router") -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security settings Envoy needs: binding 80 and 443 unprivileged. */}}
{{- define "deis.router.sysctls" -}}
# Lets Envoy bind the public ports (80, 443) without any capability; a
# namespaced sysctl Kubernetes counts as safe.
sysctls:
  - name: net.ipv4.ip_unprivileged_port_start
    value: "0"
{{- end -}}

{{/* The init container that fills the bootstrap's placeholders. */}}
{{- define "deis.router.initContainer" -}}
{{- $r := .Values.router -}}
# Fills the bootstrap's placeholders: this pod's name as Envoy's node id,
# and the feed's token (never the platform secret itself). Needs sh and
# sed, which the envoyproxy/envoy image has (the distroless variant does not).
- name: envoy-bootstrap
  image: "{{ $r.image.repository }}:{{ $r.image.tag }}"
  imagePullPolicy: {{ $r.image.pullPolicy }}
  command:
    - /bin/sh
    - -c
    - sed -e "s/{node_id}/${POD_NAME}/" -e "s/{xds_token}/${XDS_TOKEN}/" /etc/envoy-template/envoy.yaml.template > /etc/envoy/envoy.yaml
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: XDS_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "deis.componentName" (dict "root" . "component" "platform") }}
          key: xds-token
  securityContext:
    {{- include "deis.restrictedSecurityContext" . | nindent 4 }}
    runAsUser: 101
    runAsGroup: 101
  volumeMounts:
    - name: envoy-template
      mountPath: /etc/envoy-template
      readOnly: true
    - name: envoy-bootstrap
      mountPath: /etc/envoy
{{- end -}}

{{/* The Envoy container. */}}
{{- define "deis.router.container" -}}
{{- $r := .Values.router -}}
- name: envoy
  image: "{{ $r.image.repository }}:{{ $r.image.tag }}"
  imagePullPolicy: {{ $r.image.pullPolicy }}
  command: ["envoy"]
  args:
    - --config-path
    - /etc/envoy/envoy.yaml
    - --log-level
    - {{ $r.logLevel | quote }}
    # No shared memory for hot restarts: Kubernetes replaces pods instead.
    - --disable-hot-restart
  ports:
    - name: http
      containerPort: {{ $r.ports.http }}
      protocol: TCP
    - name: https
      containerPort: {{ $r.ports.https }}
      protocol: TCP
    - name: builder
      containerPort: {{ $r.ports.builder }}
      protocol: TCP
  # Ready once the feed has given Envoy its HTTP listener.
  readinessProbe:
    tcpSocket:
      port: http
    periodSeconds: 5
  # Alive while the static builder listener answers (the admin interface
  # stays on the pod's loopback).
  livenessProbe:
    tcpSocket:
      port: builder
    periodSeconds: 20
    failureThreshold: 6
  securityContext:
    {{- include "deis.restrictedSecurityContext" . | nindent 4 }}
    # The image's envoy user.
    runAsUser: 101
    runAsGroup: 101
  {{- with $r.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: envoy-bootstrap
      mountPath: /etc/envoy
      readOnly: true
    - name: envoy-tmp
      mountPath: /tmp
{{- end -}}

{{/* The volumes of the two containers above. */}}
{{- define "deis.router.volumes" -}}
- name: envoy-template
  configMap:
    name: {{ include "deis.componentName" (dict "root" . "component" "router") }}
# The rendered bootstrap holds the feed's token: memory only.
- name: envoy-bootstrap
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: envoy-tmp
  emptyDir: {}
{{- end -}}
