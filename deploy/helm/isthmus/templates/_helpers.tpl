{{/* The broker's addresses as BROKER holds them, one comma list: brokers, or broker (one address, as older values give it). */}}
{{- define "isthmus.brokers" -}}
{{- if .Values.brokers }}{{ join "," .Values.brokers }}{{ else if .Values.broker }}{{ .Values.broker }}{{ else }}{{ fail "brokers: give the broker's addresses, host:port each (broker-info.json's brokers)" }}{{ end -}}
{{- end -}}
{{/* The Secret the gateway and the MCS controller mount: brokerClient.existingSecret, or the chart's own. */}}
{{- define "isthmus.brokerClientSecret" -}}
{{- .Values.brokerClient.existingSecret | default "isthmus-broker-client" -}}
{{- end -}}
