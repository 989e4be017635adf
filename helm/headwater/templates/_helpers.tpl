{{/*
Names, labels, paths and the daemon's config. Paths inside the pod are fixed here and nowhere else:
the config, the Secret's files, the pod's volume and the shared registry.
*/}}

{{- define "headwater.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release alone when it already holds the chart's name. */}}
{{- define "headwater.fullname" -}}
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

{{/* The headless Service that gives each process its address. */}}
{{- define "headwater.headless" -}}
{{- printf "%s-cluster" (include "headwater.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "headwater.selectorLabels" -}}
app.kubernetes.io/name: {{ include "headwater.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "headwater.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "headwater.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: headwater
{{- end }}

{{- define "headwater.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "headwater.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "headwater.image" -}}
{{- $tag := .Values.image.tag }}
{{- if not $tag }}
{{- $tag = .Chart.AppVersion }}
{{- with .Values.image.variant }}{{ $tag = printf "%s-%s" $tag . }}{{ end }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* Paths inside the pod. */}}
{{- define "headwater.configPath" -}}/etc/headwater/config.yaml{{- end }}
{{- define "headwater.secretsPath" -}}/etc/headwater/secrets{{- end }}
{{- define "headwater.dataPath" -}}/var/lib/headwater{{- end }}
{{- define "headwater.sharedPath" -}}/var/lib/headwater-shared{{- end }}
{{- define "headwater.hostfilePath" -}}/etc/bytewax/hostfile.txt{{- end }}
{{- define "headwater.recoveryDir" -}}{{ include "headwater.dataPath" . }}/recovery{{- end }}
{{/* One replica: the registry on the pod's own volume; more: on the volume every pod mounts. */}}
{{- define "headwater.registryDir" -}}
{{- if gt (int .Values.replicas) 1 }}{{ include "headwater.sharedPath" . }}/registry
{{- else }}{{ include "headwater.dataPath" . }}/registry{{- end }}
{{- end }}

{{/* The keys of existingSecret the pod reads, sorted: each becomes /etc/headwater/secrets/<key>. */}}
{{- define "headwater.secretKeys" -}}
{{- $keys := values .Values.kafka.secretKeys }}
{{- with .Values.kafka.caKey }}{{ $keys = append $keys . }}{{ end }}
{{- with .Values.admin.tokenKey }}{{ $keys = append $keys . }}{{ end }}
{{- if and $keys (not .Values.existingSecret) }}
{{- fail "admin.tokenKey, kafka.secretKeys and kafka.caKey name keys of a Secret: set existingSecret to its name" }}
{{- end }}
{{- $keys | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
The daemon's config file: .Values.config with the settings the chart owns set from its values
(Kafka's address and security, the admin API, where the registry and the recovery store live).
values.schema.json refuses those keys inside .Values.config, so each is set in one place.
*/}}
{{- define "headwater.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $secrets := include "headwater.secretsPath" . }}
{{- $security := deepCopy .Values.kafka.security }}
{{- with .Values.kafka.caKey }}
{{- $_ := set $security "ssl.ca.location" (printf "%s/%s" $secrets .) }}
{{- end }}
{{- $files := dict }}
{{- range $setting, $key := .Values.kafka.secretKeys }}
{{- $_ := set $files $setting (printf "%s/%s" $secrets $key) }}
{{- end }}
{{- $kafka := dict "bootstrap_servers" .Values.kafka.bootstrapServers "replication_factor" (int .Values.kafka.replicationFactor) "security" $security "security_files" $files }}
{{- $_ := set $config "kafka" (merge $kafka (get $config "kafka" | default dict)) }}
{{- $admin := dict "enabled" true "host" "0.0.0.0" "port" (int .Values.admin.port) }}
{{- with .Values.admin.tokenKey }}
{{- $_ := set $admin "token_file" (printf "%s/%s" $secrets .) }}
{{- end }}
{{- $_ := set $config "admin" (merge $admin (get $config "admin" | default dict)) }}
{{- $_ := set $config "registry" (dict "path" (include "headwater.registryDir" .)) }}
{{- $runtime := dict "recovery_dir" (include "headwater.recoveryDir" .) "workers" (int .Values.workersPerProcess) "tail" true }}
{{- $_ := set $config "runtime" (merge $runtime (get $config "runtime" | default dict)) }}
{{- toYaml $config }}
{{- end }}

{{/* The volumes with state, mounted by the init step and the daemon alike. */}}
{{- define "headwater.stateMounts" -}}
- name: data
  mountPath: {{ include "headwater.dataPath" . }}
{{- if gt (int .Values.replicas) 1 }}
- name: registry
  mountPath: {{ include "headwater.sharedPath" . }}
- name: hostfile
  mountPath: {{ include "headwater.hostfilePath" . | dir }}
{{- end }}
{{- end }}
