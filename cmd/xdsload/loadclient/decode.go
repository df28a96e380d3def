package loadclient

import (
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
)

// unwrap returns the resource inside an envoy.service.discovery.v3.Resource
// wrapper (used by servers for TTLs and heartbeats), or a itself.
func unwrap(a *anypb.Any) (*anypb.Any, error) {
	if !a.MessageIs(&discovery.Resource{}) {
		return a, nil
	}
	var r discovery.Resource
	if err := a.UnmarshalTo(&r); err != nil {
		return nil, err
	}
	if r.GetResource() == nil {
		return nil, fmt.Errorf("resource %q wrapper without a resource", r.GetName())
	}
	return r.GetResource(), nil
}

// EDSClusterNames returns, sorted and de-duplicated, the EDS service names of
// the EDS clusters among CDS resources: eds_cluster_config.service_name, or the
// cluster name when that is empty. Resources that fail to decode are skipped and
// reported in the error; the names of the others are still returned.
func EDSClusterNames(resources []*anypb.Any) ([]string, error) {
	var names []string
	var errs []error
	for _, a := range resources {
		name, ok, err := EDSNameOf(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), errors.Join(errs...)
}

// EDSNameOf decodes one CDS resource: ok is false for a cluster that is not
// of type EDS; name is its EDS service name (the cluster name if unset).
func EDSNameOf(a *anypb.Any) (name string, ok bool, err error) {
	a, err = unwrap(a)
	if err != nil {
		return "", false, err
	}
	var c clusterv3.Cluster
	if err := a.UnmarshalTo(&c); err != nil {
		return "", false, fmt.Errorf("cluster: %w", err)
	}
	if c.GetType() != clusterv3.Cluster_EDS {
		return "", false, nil
	}
	name = c.GetEdsClusterConfig().GetServiceName()
	if name == "" {
		name = c.GetName()
	}
	return name, true, nil
}

// RDSRouteNames returns, sorted and de-duplicated, the route_config_name of
// every HttpConnectionManager with an RDS config in the filter chains (and
// default filter chain) of LDS resources.
func RDSRouteNames(resources []*anypb.Any) ([]string, error) {
	var names []string
	var errs []error
	for _, a := range resources {
		ns, err := RDSNamesOf(a)
		if err != nil {
			errs = append(errs, err)
		}
		names = append(names, ns...)
	}
	slices.Sort(names)
	return slices.Compact(names), errors.Join(errs...)
}

// RDSNamesOf decodes one LDS resource: the route_config_name of each of its
// HttpConnectionManagers that use RDS, in filter chain order (not
// de-duplicated). An HCM that fails to decode is reported in the error, the
// names of the others are still returned.
func RDSNamesOf(a *anypb.Any) ([]string, error) {
	a, err := unwrap(a)
	if err != nil {
		return nil, err
	}
	var l listenerv3.Listener
	if err := a.UnmarshalTo(&l); err != nil {
		return nil, fmt.Errorf("listener: %w", err)
	}
	var names []string
	var errs []error
	chains := l.GetFilterChains()
	if dc := l.GetDefaultFilterChain(); dc != nil {
		chains = append(slices.Clip(chains), dc)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil || !(tc.MessageIs(&hcmv3.HttpConnectionManager{}) || f.GetName() == wellknown.HTTPConnectionManager) {
				continue
			}
			var h hcmv3.HttpConnectionManager
			if err := tc.UnmarshalTo(&h); err != nil {
				errs = append(errs, fmt.Errorf("listener %q: http_connection_manager: %w", l.GetName(), err))
				continue
			}
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				names = append(names, n)
			}
		}
	}
	return names, errors.Join(errs...)
}
