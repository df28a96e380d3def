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
	"google.golang.org/protobuf/encoding/protowire"
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

// clusterTypeURL is the type URL of an envoy.config.cluster.v3.Cluster.
const clusterTypeURL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// EDSNameOf decodes one CDS resource: ok is false for a cluster that is not
// of type EDS; name is its EDS service name (the cluster name if unset).
// Only the three fields that say so are read (scanEDSName): decoding 1,000
// proxies × 1,000 whole clusters was a third of the load client's CPU.
func EDSNameOf(a *anypb.Any) (name string, ok bool, err error) {
	a, err = unwrap(a)
	if err != nil {
		return "", false, err
	}
	if a.GetTypeUrl() == clusterTypeURL {
		if name, ok, err := scanEDSName(a.GetValue()); err == nil {
			return string(name), ok, nil
		}
		// Malformed: the full decoder says why.
	}
	return decodeEDSName(a)
}

// decodeEDSName is EDSNameOf with the full decoder.
func decodeEDSName(a *anypb.Any) (name string, ok bool, err error) {
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

// Field numbers of envoy.config.cluster.v3.Cluster read by scanEDSName.
const (
	clusterName       = 1  // string name
	clusterType       = 2  // DiscoveryType type (oneof cluster_discovery_type)
	clusterEDSConfig  = 3  // EdsClusterConfig eds_cluster_config
	clusterCustomType = 38 // CustomClusterType cluster_type (oneof cluster_discovery_type)
	edsConfigService  = 2  // EdsClusterConfig.service_name
	discoveryTypeEDS  = 3  // Cluster.DiscoveryType EDS
)

// scanEDSName is EDSNameOf on the wire form of a Cluster, reading only name,
// the discovery type and eds_cluster_config.service_name, with protobuf's
// rules: the last value of a scalar wins, and so does the last member of a
// oneof set; repeated occurrences of a message merge. The name is a part of
// b.
func scanEDSName(b []byte) (name []byte, ok bool, err error) {
	var service []byte
	eds := false // the discovery type is EDS (an unset oneof is STATIC)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == clusterName && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false, protowire.ParseError(n)
			}
			name, b = v, b[n:]
			continue
		case num == clusterType && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false, protowire.ParseError(n)
			}
			eds, b = v == discoveryTypeEDS, b[n:]
			continue
		case num == clusterCustomType && typ == protowire.BytesType:
			eds = false
		case num == clusterEDSConfig && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false, protowire.ParseError(n)
			}
			if s, found, err := scanString(v, edsConfigService); err != nil {
				return nil, false, err
			} else if found {
				service = s
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if !eds {
		return nil, false, nil
	}
	if len(service) > 0 {
		return service, true, nil
	}
	return name, true, nil
}

// scanString returns the last value of string field num in message b (a part of b).
func scanString(b []byte, num protowire.Number) (s []byte, found bool, err error) {
	for len(b) > 0 {
		n0, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		b = b[n:]
		if n0 == num && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false, protowire.ParseError(n)
			}
			s, found, b = v, true, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(n0, typ, b)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return s, found, nil
}
