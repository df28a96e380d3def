package translate

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// VirtualService http[].redirect and http[].directResponse: routes Envoy answers
// itself.

// redirectAction converts an HTTPRedirect. port is the listener port the route
// serves (derivePort FROM_REQUEST_PORT can only mean that port, since routes are
// built per port) and tls whether that listener terminates TLS. Codes other than
// 301/302/303/307/308 are refused by validation; they get 301 here.
func redirectAction(rd *networkingapi.HTTPRedirect, port uint32, tls bool) *routev3.RedirectAction {
	a := &routev3.RedirectAction{HostRedirect: rd.GetAuthority(), ResponseCode: redirectCode(rd.GetRedirectCode())}
	switch {
	case rd.GetUri() != "":
		a.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: rd.GetUri()}
	case rd.GetPrefixRewrite() != "":
		a.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: rd.GetPrefixRewrite()}
	}
	if rd.GetScheme() != "" {
		a.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: rd.GetScheme()}
	}
	if rd.GetRedirectPort() != nil {
		switch p := rd.GetRedirectPort().(type) {
		case *networkingapi.HTTPRedirect_Port:
			a.PortRedirect = p.Port
		case *networkingapi.HTTPRedirect_DerivePort:
			if p.DerivePort == networkingapi.HTTPRedirect_FROM_REQUEST_PORT {
				a.PortRedirect = port
			}
			// FROM_PROTOCOL_DEFAULT is Envoy's own behaviour: no port_redirect.
		}
		scheme := rd.GetScheme()
		if scheme == "" {
			scheme = "http"
			if tls {
				scheme = "https"
			}
		}
		// Never spell out the scheme's default port.
		if (a.PortRedirect == 80 && scheme == "http") || (a.PortRedirect == 443 && scheme == "https") {
			a.PortRedirect = 0
		}
	}
	return a
}

func redirectCode(code uint32) routev3.RedirectAction_RedirectResponseCode {
	switch code {
	case 302:
		return routev3.RedirectAction_FOUND
	case 303:
		return routev3.RedirectAction_SEE_OTHER
	case 307:
		return routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		return routev3.RedirectAction_PERMANENT_REDIRECT
	}
	return routev3.RedirectAction_MOVED_PERMANENTLY
}

func directResponseAction(dr *networkingapi.HTTPDirectResponse) *routev3.DirectResponseAction {
	a := &routev3.DirectResponseAction{Status: dr.GetStatus()}
	if b := dr.GetBody(); b != nil {
		a.Body = dataSource(b)
	}
	return a
}

// maxDirectResponseBodyBytes lifts Envoy's 4 KiB default for inline direct
// response bodies to the 1 MiB validation allows, as Istio does; without it a
// larger body gets the whole route table NACKed.
const maxDirectResponseBodyBytes = 1 << 20
