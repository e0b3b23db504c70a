{{/* The release's base name, at most 63 characters (a Kubernetes label value). */}}
{{- define "dirsync.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if eq .Release.Name .Chart.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (default .Chart.Name .Values.nameOverride) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dirsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the pods of the release (add app.kubernetes.io/component per component). */}}
{{- define "dirsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dirsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dirsync.labels" -}}
{{ include "dirsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "dirsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dirsync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "dirsync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Environment shared by every dirsync container: the non-secret settings, then each secret setting
as <NAME>_FILE pointing into the mounted Secret (never the value itself).
*/}}
{{- define "dirsync.env" -}}
- name: DIRSYNC_METRICS_PORT
  value: {{ .Values.metricsPort | quote }}
{{- range $name, $value := .Values.config }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name, $key := .Values.secrets.keys }}
{{- if $key }}
- name: {{ printf "%s_FILE" $name }}
  value: {{ printf "/var/run/secrets/dirsync/%s" $name | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Secret's listed keys as files named after their settings, readable by the process alone. */}}
{{- define "dirsync.volumes" -}}
- name: secrets
  secret:
    secretName: {{ required "secrets.existingSecret must name an existing Secret" .Values.secrets.existingSecret }}
    # 0440: owner root, group fsGroup (the process's group); nobody else.
    defaultMode: 288
    items:
{{- range $name, $key := .Values.secrets.keys }}
{{- if $key }}
      - key: {{ $key }}
        path: {{ $name }}
{{- end }}
{{- end }}
# The root file system is read-only; Node and the libraries it loads may still want a /tmp.
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "dirsync.volumeMounts" -}}
- name: secrets
  mountPath: /var/run/secrets/dirsync
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod-level settings shared by every dirsync pod. */}}
{{- define "dirsync.podSpecCommon" -}}
serviceAccountName: {{ include "dirsync.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
