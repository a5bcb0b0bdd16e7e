{{/*
Names, labels and the per-role settings that fall back to `defaults`.
*/}}

{{- define "fanout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fanout.fullname" -}}
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

{{/* Name of a role's resources: FULLNAME-ROLE. Call with (dict "ctx" $ "role" "edge"). */}}
{{- define "fanout.roleName" -}}
{{- printf "%s-%s" (include "fanout.fullname" .ctx | trunc 50 | trimSuffix "-") .role }}
{{- end }}

{{/* Name of the router headless Service: its EndpointSlices are the membership. */}}
{{- define "fanout.routerHeadless" -}}
{{- printf "%s-headless" (include "fanout.roleName" (dict "ctx" . "role" "router")) }}
{{- end }}

{{- define "fanout.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "fanout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fanout
{{- end }}

{{/* Selector labels of a role. Call with (dict "ctx" $ "role" "edge"). */}}
{{- define "fanout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fanout.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "fanout.roleLabels" -}}
{{ include "fanout.labels" .ctx }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "fanout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fanout.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fanout.image" -}}
{{- $v := index .ctx.Values .role }}
{{- $tag := $v.image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- $registry := ternary $v.image.registry .ctx.Values.image.registry (hasKey $v.image "registry") }}
{{- if $registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) $v.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" $v.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "fanout.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s-nats:4222" .Release.Name }}
{{- else }}
{{- required "externalNats.url is required when nats.enabled is false" .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/* A role setting, or `defaults`' when the role leaves it empty. (dict "ctx" $ "role" "edge" "key" "nodeSelector") */}}
{{- define "fanout.setting" -}}
{{- $v := index .ctx.Values .role }}
{{- $own := index $v .key }}
{{- if $own }}{{ toYaml $own }}{{ else }}{{ with index .ctx.Values.defaults .key }}{{ toYaml . }}{{ end }}{{ end }}
{{- end }}

{{/* A security context: `defaults` merged with the role's keys. (dict "ctx" $ "role" "edge" "key" "securityContext") */}}
{{- define "fanout.mergedSetting" -}}
{{- $v := index .ctx.Values .role }}
{{- $merged := mergeOverwrite (deepCopy (index .ctx.Values.defaults .key | default dict)) (deepCopy (index $v .key | default dict)) }}
{{- toYaml $merged }}
{{- end }}

{{/* Pod termination grace of the edges: ceil(drainWindowMs / 1000) + 10 + 5, unless set. */}}
{{- define "fanout.edgeGrace" -}}
{{- if .Values.edge.terminationGracePeriodSeconds }}
{{- .Values.edge.terminationGracePeriodSeconds | int }}
{{- else }}
{{- add (div (add (int .Values.edge.drainWindowMs) 999) 1000) 15 }}
{{- end }}
{{- end }}

{{/* Scheduling of a role's pods: nodeSelector, tolerations, affinity, topology spread. */}}
{{- define "fanout.scheduling" -}}
{{- $ctx := .ctx }}
{{- $role := .role }}
{{- with include "fanout.setting" (dict "ctx" $ctx "role" $role "key" "priorityClassName") }}
priorityClassName: {{ . }}
{{- end }}
{{- with include "fanout.setting" (dict "ctx" $ctx "role" $role "key" "nodeSelector") }}
nodeSelector:
  {{- . | nindent 2 }}
{{- end }}
{{- with include "fanout.setting" (dict "ctx" $ctx "role" $role "key" "tolerations") }}
tolerations:
  {{- . | nindent 2 }}
{{- end }}
{{- with include "fanout.setting" (dict "ctx" $ctx "role" $role "key" "affinity") }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
{{- $spread := index (index $ctx.Values $role) "topologySpreadConstraints" | default $ctx.Values.defaults.topologySpreadConstraints }}
{{- if $spread }}
topologySpreadConstraints:
{{- range $spread }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "fanout.selectorLabels" (dict "ctx" $ctx "role" $role) | fromYaml)) }}
{{- end }}
{{- toYaml (list $c) | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The three probes on the admin port: /startupz, /readyz, /healthz. */}}
{{- define "fanout.probes" -}}
{{- $v := index .ctx.Values .role }}
{{- $p := mergeOverwrite (deepCopy .ctx.Values.defaults.probes) (deepCopy ($v.probes | default dict)) }}
startupProbe:
  httpGet:
    path: /startupz
    port: admin
  {{- toYaml $p.startup | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  {{- toYaml $p.readiness | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml $p.liveness | nindent 2 }}
{{- end }}

{{/* Env of every role: logging, tracing and the user's extra variables. */}}
{{- define "fanout.commonEnv" -}}
{{- if .ctx.Values.logJson }}
- name: FANOUT_LOG_JSON
  value: "true"
{{- end }}
{{- with .ctx.Values.otlpEndpoint }}
- name: FANOUT_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with include "fanout.setting" (dict "ctx" .ctx "role" .role "key" "extraEnv") }}
{{ . }}
{{- end }}
{{- end }}

{{/* Mounts of the shared config volumes. */}}
{{- define "fanout.configMounts" -}}
- name: config
  mountPath: /etc/fanout/config
  readOnly: true
- name: schema
  mountPath: /etc/fanout/schema
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "fanout.schemaConfigMap" -}}
{{- .Values.schema.existingConfigMap | default (printf "%s-schema" (include "fanout.fullname" .)) }}
{{- end }}

{{/* Whether resolvers come from a ConfigMap (else from the worker image). */}}
{{- define "fanout.resolversFromConfigMap" -}}
{{- if or .Values.resolvers.existingConfigMap .Values.resolvers.source }}true{{ end }}
{{- end }}

{{- define "fanout.resolversConfigMap" -}}
{{- .Values.resolvers.existingConfigMap | default (printf "%s-resolvers" (include "fanout.fullname" .)) }}
{{- end }}

{{/* Path of the resolvers file as the worker (and router) see it. */}}
{{- define "fanout.resolversPath" -}}
{{- if include "fanout.resolversFromConfigMap" . }}/etc/fanout/resolvers/resolvers.py{{ else }}{{ .Values.resolvers.path }}{{ end }}
{{- end }}

{{/* Checksums that roll a role's pods when its config, the schema or the resolvers change. */}}
{{- define "fanout.checksums" -}}
checksum/config: {{ include (printf "fanout.%sConfig" .role) .ctx | sha256sum }}
checksum/schema: {{ printf "%s%s" .ctx.Values.schema.existingConfigMap .ctx.Values.schema.sdl | sha256sum }}
{{- if .resolvers }}
checksum/resolvers: {{ printf "%s%s" .ctx.Values.resolvers.existingConfigMap .ctx.Values.resolvers.source | sha256sum }}
{{- end }}
{{- end }}

{{/* A YAML config file (flag name -> value) from `base` overridden by the role's `config`;
whole floats become ints so large numbers are not written in exponent form. */}}
{{- define "fanout.configFile" -}}
{{- $merged := mergeOverwrite (deepCopy .base) (deepCopy (.config | default dict)) }}
{{- $out := dict }}
{{- range $k, $v := $merged }}
{{- if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) }}
{{- $_ := set $out $k (int64 $v) }}
{{- else }}
{{- $_ := set $out $k $v }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{- define "fanout.edgeConfig" -}}
{{- $v := .Values }}
{{- $base := dict
  "nats_url" (include "fanout.natsUrl" .)
  "partitions" (int $v.partitions)
  "membership" "kubernetes"
  "k8s_service" (include "fanout.routerHeadless" .)
  "listen" (printf "0.0.0.0:%d" (int $v.edge.ports.http))
  "admin_listen" (printf "0.0.0.0:%d" (int $v.edge.ports.admin))
  "schema" "/etc/fanout/schema/schema.graphql"
  "drain_window_ms" (int $v.edge.drainWindowMs)
}}
{{- if $v.auth.allowAnonymous }}{{ $_ := set $base "allow_anonymous" true }}{{ end }}
{{- with $v.auth.issuers }}{{ $_ := set $base "jwt_issuer" . }}{{ end }}
{{- with $v.auth.audiences }}{{ $_ := set $base "jwt_audience" . }}{{ end }}
{{- if and $v.auth.existingSecret $v.auth.jwksKey }}{{ $_ := set $base "jwks_file" "/etc/fanout/jwt/jwks.json" }}{{ end }}
{{- include "fanout.configFile" (dict "base" $base "config" $v.edge.config) }}
{{- end }}

{{- define "fanout.routerConfig" -}}
{{- $v := .Values }}
{{- $base := dict
  "nats_url" (include "fanout.natsUrl" .)
  "partitions" (int $v.partitions)
  "membership" "kubernetes"
  "k8s_service" (include "fanout.routerHeadless" .)
  "grpc_listen" (printf "0.0.0.0:%d" (int $v.router.ports.grpc))
  "admin_listen" (printf "0.0.0.0:%d" (int $v.router.ports.admin))
  "schema" "/etc/fanout/schema/schema.graphql"
}}
{{- if include "fanout.resolversFromConfigMap" . }}{{ $_ := set $base "resolvers" (include "fanout.resolversPath" .) }}{{ end }}
{{- with $v.resolvers.pythonFields }}{{ $_ := set $base "python_fields" (join "," .) }}{{ end }}
{{- if $v.multiTenant }}{{ $_ := set $base "multi_tenant" true }}{{ end }}
{{- include "fanout.configFile" (dict "base" $base "config" $v.router.config) }}
{{- end }}

{{- define "fanout.workerConfig" -}}
{{- $v := .Values }}
{{- $base := dict
  "nats_url" (include "fanout.natsUrl" .)
  "admin_listen" (printf "0.0.0.0:%d" (int $v.worker.ports.admin))
  "schema" "/etc/fanout/schema/schema.graphql"
  "resolvers" (include "fanout.resolversPath" .)
}}
{{- if $v.multiTenant }}{{ $_ := set $base "multi_tenant" true }}{{ end }}
{{- include "fanout.configFile" (dict "base" $base "config" $v.worker.config) }}
{{- end }}

{{/* JWT keys of the edges from `auth.existingSecret`. */}}
{{- define "fanout.authEnv" -}}
{{- with .Values.auth.existingSecret }}
{{- if $.Values.auth.hs256SecretKey }}
- name: FANOUT_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.auth.hs256SecretKey }}
{{- end }}
{{- if $.Values.auth.publicKeyPemKey }}
- name: FANOUT_JWT_PUBLIC_KEY_PEM
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.auth.publicKeyPemKey }}
{{- end }}
{{- end }}
{{- end }}
