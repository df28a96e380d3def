package translate

import (
	"fmt"
	"sort"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"

	"github.com/mizzenmesh/mizzen/pkg/model"
)

// Filter names of Envoy's RBAC filters.
const (
	rbacHTTPFilterName    = "envoy.filters.http.rbac"
	rbacNetworkFilterName = "envoy.filters.network.rbac"
)

// authzPolicies is the RBAC of one inbound filter chain, one Envoy RBAC config
// per action, in Istio's evaluation order: AUDIT (LOG, never blocks), DENY, ALLOW.
// A nil entry means no filter for that action.
type authzRBAC struct {
	audit, deny, allow *rbacv3.RBAC
}

// inboundRBAC translates the AuthorizationPolicies that apply to the proxy into
// RBAC for an HTTP chain (tcp false) or a TCP chain (tcp true).
//
//   - Each rule i of policy <name> in <ns> becomes Envoy policy
//     `ns[<ns>]-policy[<name>]-rule[<i>]` (principals = from + source-side when,
//     permissions = to + destination-side when; rbac_principals.go,
//     rbac_permissions.go).
//   - ALLOW: if any ALLOW policy applies there is an ALLOW filter, even with no
//     policies left in it, so unmatched requests are denied (403 `RBAC: access
//     denied`). A rule with a field it cannot express (invalid, or HTTP-only on a
//     TCP chain) is dropped: it allows nothing.
//   - DENY: such a field is left out of the rule, so the rule denies more.
//   - AUDIT: a LOG filter, the rule's matches are flagged in dynamic metadata.
//   - A policy without rules is `rule[0]` that never matches (istiod's
//     allow-nothing shape; for DENY and AUDIT a filter that never fires).
func inboundRBAC(policies []*model.AuthzPolicy, tcp bool) authzRBAC {
	var out authzRBAC
	for _, p := range policies {
		var target **rbacv3.RBAC
		action := rbacv3.RBAC_ALLOW
		switch p.Action {
		case model.AuthzAllow:
			target = &out.allow
		case model.AuthzDeny:
			target, action = &out.deny, rbacv3.RBAC_DENY
		case model.AuthzAudit:
			target, action = &out.audit, rbacv3.RBAC_LOG
		default:
			continue
		}
		if *target == nil {
			*target = &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
		}
		for _, r := range p.Rules {
			if pol := rulePolicy(r, p.Action, tcp); pol != nil {
				(*target).Policies[fmt.Sprintf("ns[%s]-policy[%s]-rule[%d]", p.Namespace, p.Name, r.Index)] = pol
			}
		}
		if len(p.Rules) == 0 {
			// istiod names a policy without rules in the filter as one that
			// never matches (allow-nothing): same effect as no entry, but
			// config dumps and explain show which policy is in force.
			(*target).Policies[fmt.Sprintf("ns[%s]-policy[%s]-rule[0]", p.Namespace, p.Name)] = matchNever()
		}
	}
	// A DENY or AUDIT filter without policies matches nothing: leave it out.
	if out.deny != nil && len(out.deny.Policies) == 0 {
		out.deny = nil
	}
	if out.audit != nil && len(out.audit.Policies) == 0 {
		out.audit = nil
	}
	return out
}

func (a authzRBAC) list() []*rbacv3.RBAC {
	var out []*rbacv3.RBAC
	for _, r := range []*rbacv3.RBAC{a.audit, a.deny, a.allow} {
		if r != nil {
			out = append(out, r)
		}
	}
	return out
}

// httpFilters are the RBAC HTTP filters, to run before the router.
func (a authzRBAC) httpFilters() []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	for _, r := range a.list() {
		out = append(out, &hcmv3.HttpFilter{Name: rbacHTTPFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbachttpv3.RBAC{Rules: r})}})
	}
	return out
}

// networkFilters are the RBAC network filters, to run before tcp_proxy.
func (a authzRBAC) networkFilters() []*listenerv3.Filter {
	var out []*listenerv3.Filter
	for _, r := range a.list() {
		out = append(out, &listenerv3.Filter{Name: rbacNetworkFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&rbacnetv3.RBAC{
			StatPrefix: "tcp.",
			Rules:      r,
		})}})
	}
	return out
}

// rulePolicy builds one rule, or nil when an ALLOW rule cannot be expressed.
func rulePolicy(r *model.AuthzRule, action model.AuthzAction, tcp bool) *rbacv3.Policy {
	// usable reports whether a field takes part; ok false drops the whole rule.
	usable := func(f model.AuthzField) (use, ok bool) {
		if f.Invalid || (tcp && f.HTTPOnly()) {
			return false, action != model.AuthzAllow
		}
		return true, true
	}
	var srcWhen, dstWhen []model.AuthzField
	for _, f := range r.When {
		use, ok := usable(f)
		if !ok {
			return nil
		}
		if !use {
			continue
		}
		if isDestinationAttribute(f.Key) {
			dstWhen = append(dstWhen, f)
		} else {
			srcWhen = append(srcWhen, f)
		}
	}
	filter := func(groups [][]model.AuthzField) ([][]model.AuthzField, bool) {
		var out [][]model.AuthzField
		for _, g := range groups {
			var kept []model.AuthzField
			for _, f := range g {
				use, ok := usable(f)
				if !ok {
					return nil, false
				}
				if use {
					kept = append(kept, f)
				}
			}
			out = append(out, kept)
		}
		return out, true
	}
	from, ok := filter(r.From)
	if !ok {
		return nil
	}
	to, ok := filter(r.To)
	if !ok {
		return nil
	}
	return &rbacv3.Policy{
		Permissions: rulePermissions(to, dstWhen),
		Principals:  rulePrincipals(from, srcWhen),
	}
}

// matchNever is a policy no request matches: not any permission, not any principal.
func matchNever() *rbacv3.Policy {
	return &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}}}},
	}
}

// isDestinationAttribute: when keys about the destination go to permissions,
// everything about the caller and the request to principals, as in Istio.
func isDestinationAttribute(key string) bool {
	switch key {
	case "destination.ip", "destination.port", "connection.sni", "request.host", "request.method", "request.path":
		return true
	}
	return false
}

// orderedAuthzPolicies keeps output deterministic whatever the model's order.
func orderedAuthzPolicies(ps []*model.AuthzPolicy) []*model.AuthzPolicy {
	out := append([]*model.AuthzPolicy(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}
