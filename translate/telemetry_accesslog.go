package translate

import (
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	fileaccesslogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celformatterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/cel/v3"
	reqwithoutqueryv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// MeshConfig accessLogFile, accessLogEncoding, accessLogFormat -> a file access
// log on every HCM and tcp_proxy (withMeshTelemetry), as istiod builds it
// (FileAccessLogFromMeshConfig): Istio's default formats, a newline added to a
// text format that has none, an unusable JSON format replaced by the default
// (model reports it as InvalidAccessLogFormat).

const fileAccessLogName = "envoy.access_loggers.file"

// IstioTextAccessLogFormat is istiod's default text access log line.
const IstioTextAccessLogFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% " +
	"%PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% " +
	"%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% " +
	"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% " +
	"%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" " +
	"\"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" " +
	"%UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% " +
	"%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"

// istioJSONAccessLogFormat is istiod's default JSON access log object.
var istioJSONAccessLogFormat = map[string]string{
	"start_time":                        "%START_TIME%",
	"route_name":                        "%ROUTE_NAME%",
	"method":                            "%REQ(:METHOD)%",
	"path":                              "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol":                          "%PROTOCOL%",
	"response_code":                     "%RESPONSE_CODE%",
	"response_flags":                    "%RESPONSE_FLAGS%",
	"response_code_details":             "%RESPONSE_CODE_DETAILS%",
	"connection_termination_details":    "%CONNECTION_TERMINATION_DETAILS%",
	"bytes_received":                    "%BYTES_RECEIVED%",
	"bytes_sent":                        "%BYTES_SENT%",
	"duration":                          "%DURATION%",
	"upstream_service_time":             "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"x_forwarded_for":                   "%REQ(X-FORWARDED-FOR)%",
	"user_agent":                        "%REQ(USER-AGENT)%",
	"request_id":                        "%REQ(X-REQUEST-ID)%",
	"authority":                         "%REQ(:AUTHORITY)%",
	"upstream_host":                     "%UPSTREAM_HOST%",
	"upstream_cluster":                  "%UPSTREAM_CLUSTER_RAW%",
	"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
	"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
	"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
	"requested_server_name":             "%REQUESTED_SERVER_NAME%",
	"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}

// accessLogs is the mesh's access log, nil when accessLogFile is empty (off).
func accessLogs(mc *meshv1alpha1.MeshConfig) []*accesslogv3.AccessLog {
	path := mc.GetAccessLogFile()
	if path == "" {
		return nil
	}
	var format *corev3.SubstitutionFormatString
	var operators string // every format string, to find the formatter extensions it needs
	if mc.GetAccessLogEncoding() == meshv1alpha1.MeshConfig_JSON {
		obj, err := model.AccessLogJSONFormat(mc)
		if obj == nil || err != nil {
			fields := map[string]any{}
			for k, v := range istioJSONAccessLogFormat {
				fields[k] = v
			}
			obj, _ = structpb.NewStruct(fields)
		}
		format = &corev3.SubstitutionFormatString{
			Format:            &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: obj},
			JsonFormatOptions: &corev3.JsonFormatOptions{SortProperties: false},
		}
		operators = structStrings(obj)
	} else {
		text := mc.GetAccessLogFormat()
		if text == "" {
			text = IstioTextAccessLogFormat
		} else if !strings.HasSuffix(text, "\n") {
			text += "\n" // Istio's rule: one entry per line, whatever the format says
		}
		format = &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormatSource{
			TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: text}},
		}}
		operators = text
	}
	format.Formatters = accessLogFormatters(operators)
	fl := &fileaccesslogv3.FileAccessLog{
		Path:            path,
		AccessLogFormat: &fileaccesslogv3.FileAccessLog_LogFormat{LogFormat: format},
	}
	return []*accesslogv3.AccessLog{{
		Name:       fileAccessLogName,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAnyDeterministic(fl)},
	}}
}

// accessLogFormatters are the formatter extensions a format's command operators
// need: Envoy refuses a format naming %REQ_WITHOUT_QUERY(...)% or %CEL(...)%
// unless their extension is configured with it, as istiod does.
func accessLogFormatters(operators string) []*corev3.TypedExtensionConfig {
	var out []*corev3.TypedExtensionConfig
	if strings.Contains(operators, "%CEL(") {
		out = append(out, &corev3.TypedExtensionConfig{Name: "envoy.formatter.cel", TypedConfig: mustAny(&celformatterv3.Cel{})})
	}
	if strings.Contains(operators, "%REQ_WITHOUT_QUERY(") {
		out = append(out, &corev3.TypedExtensionConfig{Name: "envoy.formatter.req_without_query", TypedConfig: mustAny(&reqwithoutqueryv3.ReqWithoutQuery{})})
	}
	return out
}

// structStrings joins the string values of a JSON format, nested ones too.
func structStrings(s *structpb.Struct) string {
	var b strings.Builder
	var walk func(v *structpb.Value)
	walk = func(v *structpb.Value) {
		switch k := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			b.WriteString(k.StringValue)
			b.WriteByte('\n')
		case *structpb.Value_StructValue:
			for _, f := range k.StructValue.GetFields() {
				walk(f)
			}
		case *structpb.Value_ListValue:
			for _, e := range k.ListValue.GetValues() {
				walk(e)
			}
		}
	}
	for _, f := range s.GetFields() {
		walk(f)
	}
	return b.String()
}
