{{/* The Secret the gateway and the MCS controller mount: brokerClient.existingSecret, or the chart's own. */}}
{{- define "isthmus.brokerClientSecret" -}}
{{- .Values.brokerClient.existingSecret | default "isthmus-broker-client" -}}
{{- end -}}
