{{/* Names and labels. */}}
{{- define "cae.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cae.fullname" -}}
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

{{- define "cae.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cae.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cae.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cae.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cae.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cae.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cae.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "cae.configDir" -}}/etc/cloudflare-aop-exporter{{- end }}
{{- define "cae.tokenDir" -}}/run/secrets/cloudflare-aop-exporter{{- end }}
{{- define "cae.webDir" -}}/etc/cloudflare-aop-exporter/web{{- end }}
{{- define "cae.tlsDir" -}}/etc/cloudflare-aop-exporter/tls{{- end }}
{{- define "cae.stateDir" -}}/var/lib/cloudflare-aop-exporter{{- end }}

{{/* The Secret holding the API token: an existing one, the chart's, or none. */}}
{{- define "cae.tokenSecretName" -}}
{{- if and .Values.cloudflare.existingSecret .Values.cloudflare.apiToken }}
{{- fail "cloudflare.apiToken and cloudflare.existingSecret are both set: use one" }}
{{- end }}
{{- if .Values.cloudflare.existingSecret }}
{{- .Values.cloudflare.existingSecret }}
{{- else if .Values.cloudflare.apiToken }}
{{- printf "%s-token" (include "cae.fullname" .) }}
{{- end }}
{{- end }}

{{- define "cae.webConfigSecretName" -}}
{{- if and .Values.webConfig.existingSecret .Values.webConfig.config }}
{{- fail "webConfig.config and webConfig.existingSecret are both set: use one" }}
{{- end }}
{{- if .Values.webConfig.existingSecret }}
{{- .Values.webConfig.existingSecret }}
{{- else }}
{{- printf "%s-web-config" (include "cae.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The exporter's config: the user's `config` with the keys the chart owns set on top. Refuses
user keys that would fight the chart's (the exporter would otherwise silently use ours).
*/}}
{{- define "cae.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $cloudflare := get $config "cloudflare" | default dict }}
{{- $server := get $config "server" | default dict }}
{{- $state := get $config "state" | default dict }}
{{- range $key := list "listen" "web_config_file" "probe_listen" }}
{{- if hasKey $server $key }}
{{- fail (printf "config.server.%s is set by the chart (service.port, webConfig); remove it" $key) }}
{{- end }}
{{- end }}
{{- if hasKey $state "dir" }}
{{- fail "config.state.dir is set by the chart (the persistence volume); remove it" }}
{{- end }}
{{- if hasKey $config "leader_election" }}
{{- fail "config.leader_election is set by the chart (leaderElection); remove it" }}
{{- end }}
{{- if include "cae.tokenSecretName" . }}
{{- range $key := keys $cloudflare | sortAlpha }}
{{- if or (hasPrefix "api_token" $key) (hasPrefix "api_key" $key) (hasPrefix "api_email" $key) }}
{{- fail (printf "config.cloudflare.%s conflicts with the token Secret (cloudflare.existingSecret / cloudflare.apiToken): use one or the other" $key) }}
{{- end }}
{{- end }}
{{- $_ := set $cloudflare "api_token_file" (printf "%s/%s" (include "cae.tokenDir" .) .Values.cloudflare.existingSecretKey) }}
{{- end }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.service.port)) }}
{{- if .Values.webConfig.enabled }}
{{- $_ := set $server "web_config_file" (printf "%s/web.yml" (include "cae.webDir" .)) }}
{{- $_ := set $server "probe_listen" (printf "0.0.0.0:%d" (int .Values.webConfig.probePort)) }}
{{- end }}
{{- $_ := set $state "dir" (include "cae.stateDir" .) }}
{{- $_ := set $config "cloudflare" $cloudflare }}
{{- $_ := set $config "server" $server }}
{{- $_ := set $config "state" $state }}
{{- if .Values.leaderElection.enabled }}
{{- $_ := set $config "leader_election" (dict "enabled" true "lease_name" (include "cae.fullname" .) "lease_duration" .Values.leaderElection.leaseDuration) }}
{{- end }}
{{- include "cae.toml.table" (dict "table" $config "path" "") }}
{{- end }}

{{/*
A minimal TOML writer. Helm's toToml writes every number as a float (8 becomes 8.0, which the
exporter's integer keys refuse), so whole numbers are written as integers here. Strings are
JSON-quoted, which is valid TOML. Scalars and arrays of scalars first, then sub-tables, then
arrays of tables, each table under its dotted path.
*/}}
{{- define "cae.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if kindIs "float64" $v }}{{ if eq (floor $v) $v }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) }}{{ $v }}
{{- else if kindIs "slice" $v }}[{{ range $i, $item := $v }}{{ if $i }}, {{ end }}{{ include "cae.toml.value" $item }}{{ end }}]
{{- else }}{{ fail (printf "config: cannot write %v (%s) as TOML" $v (kindOf $v)) }}
{{- end }}
{{- end }}

{{- define "cae.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) (kindIs "map" (first .)) }}true{{ end }}
{{- end }}

{{- define "cae.toml.table" -}}
{{- $table := .table }}
{{- $path := .path }}
{{- range $key := keys $table | sortAlpha }}
{{- $v := get $table $key }}
{{- if and (not (kindIs "map" $v)) (not (include "cae.toml.isTableArray" $v)) (not (kindIs "invalid" $v)) }}
{{ $key }} = {{ include "cae.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $key := keys $table | sortAlpha }}
{{- $v := get $table $key }}
{{- $sub := ternary $key (printf "%s.%s" $path $key) (eq $path "") }}
{{- if kindIs "map" $v }}

[{{ $sub }}]
{{- include "cae.toml.table" (dict "table" $v "path" $sub) }}
{{- else if include "cae.toml.isTableArray" $v }}
{{- range $item := $v }}

[[{{ $sub }}]]
{{- include "cae.toml.table" (dict "table" $item "path" $sub) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
