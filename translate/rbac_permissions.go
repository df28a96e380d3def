package translate

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// rulePermissions: one permission per `to` entry (ORed), each the AND of its
// fields and of the destination-side when conditions. No to: any request.
func rulePermissions(to [][]model.AuthzField, when []model.AuthzField) []*rbacv3.Permission {
	if len(to) == 0 {
		to = [][]model.AuthzField{nil}
	}
	var out []*rbacv3.Permission
	for _, group := range to {
		var rules []*rbacv3.Permission
		for _, f := range append(append([]model.AuthzField(nil), group...), when...) {
			rules = append(rules, fieldPermission(f))
		}
		switch len(rules) {
		case 0:
			out = append(out, &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}})
		case 1:
			out = append(out, rules[0])
		default:
			out = append(out, &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: rules}}})
		}
	}
	return out
}

func fieldPermission(f model.AuthzField) *rbacv3.Permission {
	one := func(vals []string) *rbacv3.Permission {
		var rules []*rbacv3.Permission
		for _, v := range vals {
			rules = append(rules, valuePermission(f.Key, v))
		}
		if len(rules) == 1 {
			return rules[0]
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: rules}}}
	}
	var and []*rbacv3.Permission
	if len(f.Values) > 0 {
		and = append(and, one(f.Values))
	}
	if len(f.NotValues) > 0 {
		and = append(and, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: one(f.NotValues)}})
	}
	if len(and) == 1 {
		return and[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: and}}}
}

func valuePermission(key, v string) *rbacv3.Permission {
	switch key {
	case "request.host":
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: rbacHeaderMatcher(":authority", v, true)}}
	case "request.method":
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: rbacHeaderMatcher(":method", v, false)}}
	case "request.path":
		if model.PathTemplate(v) {
			return pathTemplatePermission(v)
		}
		// url_path: the path without query, after the HCM normalized it.
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: wildcardMatcher(v, "")}}}}
	case "destination.port":
		n, _ := strconv.Atoi(v)
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
	case "destination.ip":
		return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: rbacCIDR(v)}}
	default: // connection.sni
		return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: wildcardMatcher(v, "")}}
	}
}

// pathTemplateSyntax turns Istio's path template operators into Envoy's
// uri_template ones: "{*}" one segment is "*", "{**}" the rest is "**".
var pathTemplateSyntax = strings.NewReplacer("{**}", "**", "{*}", "*")

// pathTemplatePermission: a path with "{*}" or "{**}" (model validated their
// placement) is matched by Envoy's uri_template matcher, as istiod does.
func pathTemplatePermission(v string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
		Name:        "uri-template",
		TypedConfig: mustAny(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: pathTemplateSyntax.Replace(v)}),
	}}}
}
