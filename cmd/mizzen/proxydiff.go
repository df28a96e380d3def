package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/pmezard/go-difflib/difflib"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// typeDiff is how one xDS type of a proxy compares between mizzen's view and
// the proxy's own config.
type typeDiff struct {
	Type          string `json:"type"`
	Match         bool   `json:"match"`
	MizzenVersion string `json:"mizzen_version,omitempty"`
	EnvoyVersion  string `json:"envoy_version,omitempty"`
	// LastLoaded is when the proxy last took a resource of this type.
	LastLoaded time.Time `json:"last_loaded,omitzero"`
	Diff       string    `json:"diff,omitempty"`
}

// runProxyDiff is `proxy-status <proxy> --admin <addr>`.
func runProxyDiff(ctx context.Context, out io.Writer, format, mizzen, admin, name string) error {
	id, err := resolveProxy(ctx, mizzen, name)
	if err != nil {
		return err
	}
	want, err := loadMizzenView(ctx, mizzen, id)
	if err != nil {
		return err
	}
	got, err := loadEnvoyAdmin(ctx, admin, false)
	if err != nil {
		return err
	}
	diffs, err := compareProxyConfig(want, got)
	if err != nil {
		return err
	}
	if done, err := printStructured(out, format, map[string]any{"proxy": id, "admin": admin, "types": diffs}); done {
		if err != nil {
			return err
		}
	} else if format != "table" && format != "" {
		return fmt.Errorf("-o %s: want table, json or yaml", format)
	} else {
		for _, d := range diffs {
			if d.Match {
				line := d.Type + " Match"
				if d.Type == "Routes" && !d.LastLoaded.IsZero() {
					line += " (RDS last loaded at " + d.LastLoaded.Local().Format(time.RFC1123) + ")"
				}
				fmt.Fprintln(out, line)
				continue
			}
			fmt.Fprintf(out, "%s Don't Match\n%s\n", d.Type, d.Diff)
		}
	}
	for _, d := range diffs {
		if !d.Match {
			return errFound
		}
	}
	return nil
}

// compareProxyConfig compares the xDS resources of both sides per type; the
// proxy's bootstrap (static) resources are not mizzen's and are left out.
func compareProxyConfig(want, got *proxyConfig) ([]typeDiff, error) {
	type side struct {
		text    string
		version string
		loaded  time.Time
	}
	build := func(pc *proxyConfig, typ string) (side, error) {
		var items []named
		var kind string // of resource, for the line naming each
		var loaded time.Time
		var latest string // the version of the resource loaded last
		seen := func(version string, updated time.Time) {
			if updated.After(loaded) {
				loaded, latest = updated, version
			}
		}
		add := func(name string, m proto.Message, version string, updated time.Time) error {
			b, err := normalJSON(m)
			if err != nil {
				return fmt.Errorf("%s %s of %s: %w", typ, name, pc.source, err)
			}
			// A line naming the resource, so every hunk says whose it is.
			items = append(items, named{name, "# " + kind + " " + name + "\n" + b})
			seen(version, updated)
			return nil
		}
		var label string
		var err error
		switch typ {
		case "Clusters":
			label, kind = "cds", "cluster"
			for _, e := range pc.clusters {
				if e.dynamic() && err == nil {
					err = add(e.msg.GetName(), e.msg, e.version, e.lastUpdated)
				}
			}
		case "Listeners":
			label, kind = "lds", "listener"
			for _, e := range pc.listeners {
				if e.dynamic() && err == nil {
					err = add(e.msg.GetName(), e.msg, e.version, e.lastUpdated)
				}
			}
		case "Routes":
			label, kind = "rds", "route configuration"
			for _, e := range pc.routes {
				if e.dynamic() && err == nil {
					err = add(e.msg.GetName(), e.msg, e.version, e.lastUpdated)
				}
			}
		case "Endpoints":
			label = "eds"
			// Envoy dumps a load assignment for every cluster, also those
			// whose endpoints are inline (STATIC, DNS) or none (ORIGINAL_DST):
			// only EDS clusters' endpoints come over EDS.
			eds := map[string]bool{}
			for _, c := range pc.clusters {
				if c.msg.GetType() == clusterv3.Cluster_EDS && c.msg.GetClusterType() == nil {
					eds[c.msg.GetName()] = true
				}
			}
			for _, e := range pc.endpoints {
				if e.dynamic() && eds[e.msg.GetClusterName()] {
					items = append(items, named{e.msg.GetClusterName(), endpointSummary(e.msg)})
					seen(e.version, e.lastUpdated)
				}
			}
		}
		if err != nil {
			return side{}, err
		}
		sort.SliceStable(items, func(i, j int) bool { return items[i].name < items[j].name })
		var b strings.Builder
		for _, it := range items {
			b.WriteString(it.text)
		}
		version := pc.versions[label]
		if version == "" {
			// Envoy has no dump-wide RDS or EDS version, each resource has its own.
			version = latest
		}
		return side{b.String(), version, loaded}, nil
	}
	var out []typeDiff
	for _, typ := range []string{"Clusters", "Listeners", "Routes", "Endpoints"} {
		w, err := build(want, typ)
		if err != nil {
			return nil, err
		}
		g, err := build(got, typ)
		if err != nil {
			return nil, err
		}
		d := typeDiff{Type: typ, Match: w.text == g.text, MizzenVersion: w.version, EnvoyVersion: g.version, LastLoaded: g.loaded}
		if !d.Match {
			a := difflib.SplitLines(w.text)
			d.Diff, err = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
				A: a, B: difflib.SplitLines(g.text),
				FromFile: want.source + " (what mizzen serves now)", ToFile: got.source + " (what the proxy holds)",
				Context: 3,
			})
			if err != nil {
				return nil, err
			}
			d.Diff = nameHunks(d.Diff, a)
		}
		out = append(out, d)
	}
	return out, nil
}

type named struct{ name, text string }

// nameHunks appends to each hunk header the resource the hunk starts in (the
// "# <kind> <name>" line before it in a), as git names the function.
func nameHunks(diff string, a []string) string {
	lines := strings.Split(diff, "\n")
	for i, l := range lines {
		var start int // "@@ -start,len" or "@@ -start" for one line
		if _, err := fmt.Sscanf(l, "@@ -%d", &start); err != nil {
			continue
		}
		for j := min(start-1, len(a)-1); j >= 0; j-- {
			if strings.HasPrefix(a[j], "# ") {
				lines[i] = l + " " + strings.TrimSuffix(a[j], "\n")
				break
			}
		}
	}
	return strings.Join(lines, "\n")
}

// normalJSON is a resource as indented JSON with sorted keys, so the same
// proto reads the same whoever serialized it.
func normalJSON(m proto.Message) (string, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return "", err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	b, err = json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}

// endpointSummary is what an EDS resource means, one line per endpoint.
// Envoy does not dump the ClusterLoadAssignment it was sent but one rebuilt
// from the hosts it made of it (defaults filled in, health as applied), so
// the two sides are compared on what decides traffic, not byte for byte.
func endpointSummary(cla *endpointv3.ClusterLoadAssignment) string {
	var lines []string
	for _, loc := range cla.GetEndpoints() {
		l := loc.GetLocality()
		for _, lb := range loc.GetLbEndpoints() {
			_, _, addr := socketAddress(lb.GetEndpoint().GetAddress())
			w := lb.GetLoadBalancingWeight().GetValue()
			if w == 0 {
				w = 1
			}
			hs := lb.GetHealthStatus()
			if hs == corev3.HealthStatus_UNKNOWN {
				hs = corev3.HealthStatus_HEALTHY
			}
			lines = append(lines, fmt.Sprintf("  %s %s weight=%d priority=%d locality=%s/%s/%s\n",
				addr, hs, w, loc.GetPriority(), l.GetRegion(), l.GetZone(), l.GetSubZone()))
		}
	}
	sort.Strings(lines)
	return cla.GetClusterName() + ":\n" + strings.Join(lines, "")
}
