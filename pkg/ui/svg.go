package ui

import (
	"fmt"
	"html"
	"strings"
)

// box is a node of the graph: its lines of text and where it sits.
type box struct {
	x, y, w, h float64
	lines      []line
	fill       string
}

type line struct {
	text  string
	class string // "" | "title" | "weight" | "err" | "note"
}

const (
	lineH    = 17.0
	padY     = 8.0
	gapY     = 14.0
	maxChars = 46
)

func newBox(x, w float64, fill string, lines []line) *box {
	return &box{x: x, w: w, h: 2*padY + lineH*float64(len(lines)), lines: lines, fill: fill}
}

// stack places boxes top to bottom; it returns the column's height.
func stack(bs []*box) float64 {
	y := 10.0
	for _, b := range bs {
		b.y = y
		y += b.h + gapY
	}
	return y
}

func clip(s string) string {
	if r := []rune(s); len(r) > maxChars {
		return string(r[:maxChars-1]) + "…"
	}
	return s
}

// drawMesh renders the mesh as three columns — where requests enter
// (gateways, the mesh's sidecars), the VirtualService rules, the Services
// with their workloads — with an edge for every hop. Every fact is text in
// the SVG, so it reads (and is found by a screen reader or a test) without
// hovering.
func drawMesh(m *Mesh) string {
	const (
		x0, w0 = 10.0, 210.0
		x1, w1 = 270.0, 330.0
		x2, w2 = 660.0, 340.0
		width  = 1010.0
	)
	entries := map[string]*box{}
	var col0, col1, col2 []*box
	for _, e := range m.Entries {
		ls := []line{{"gateway", "title"}, {clip(e), ""}}
		if e == "mesh" {
			ls = []line{{"mesh", "title"}, {"every sidecar", ""}}
		}
		b := newBox(x0, w0, "#e8eef8", ls)
		entries[e] = b
		col0 = append(col0, b)
	}
	routes := make([]*box, len(m.Routes))
	for i, r := range m.Routes {
		ls := []line{{clip("VirtualService " + r.VirtualService), "title"}, {clip("rule " + r.Rule + " · hosts " + strings.Join(r.Hosts, ", ")), "note"}}
		if r.Match != "" {
			ls = append(ls, line{clip("match " + r.Match), "note"})
		}
		for _, d := range r.To {
			t := "→ " + d.Service
			if d.Subset != "" {
				t += " " + d.Subset
			}
			ls = append(ls, line{clip(fmt.Sprintf("%s  %d%%", t, d.Weight)), "weight"})
		}
		if r.Fault != "" {
			ls = append(ls, line{clip("fault: " + r.Fault), "err"})
		}
		if r.Mirror != "" {
			ls = append(ls, line{clip("mirror → " + r.Mirror), "note"})
		}
		if r.Redirect != "" {
			ls = append(ls, line{clip("redirect → " + r.Redirect), "note"})
		}
		for _, e := range r.Errors {
			ls = append(ls, line{clip("⚠ " + e), "err"})
		}
		routes[i] = newBox(x1, w1, "#f3f3f3", ls)
		col1 = append(col1, routes[i])
	}
	services := map[string]*box{}
	for _, s := range m.Services {
		title := s.Key
		if s.External {
			title = "external " + s.Host
		}
		ls := []line{{clip(title), "title"}}
		if len(s.Ports) > 0 || len(s.Subsets) > 0 {
			ls = append(ls, line{clip("ports " + strings.Join(s.Ports, ", ") + subsetsText(s.Subsets)), "note"})
		}
		for _, w := range s.Workloads {
			ls = append(ls, line{clip(fmt.Sprintf("%s  mTLS %s", w.Pod, w.MTLS)), ""})
			for _, p := range w.Policies {
				ls = append(ls, line{clip("  authz " + p), "note"})
			}
			for _, e := range w.Errors {
				ls = append(ls, line{clip("  ⚠ " + e), "err"})
			}
		}
		for _, e := range s.Errors {
			ls = append(ls, line{clip("⚠ " + e), "err"})
		}
		b := newBox(x2, w2, "#eef6ee", ls)
		services[s.Key] = b
		col2 = append(col2, b)
	}
	h := max(stack(col0), stack(col1), stack(col2), 40)

	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-labelledby="mesh-title">`, width, h, width, h)
	sb.WriteString(`<title id="mesh-title">Mesh graph: where requests enter, the VirtualService rules they meet, and the Services and workloads they reach</title>`)
	sb.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#4a4a4a"/></marker></defs>`)
	edge := func(a, b *box, dashed bool) {
		x1, y1 := a.x+a.w, a.y+a.h/2
		x2, y2 := b.x, b.y+min(b.h/2, 2*padY+lineH)
		mid := (x1 + x2) / 2
		dash := ""
		if dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&sb, `<path d="M%g,%g C%g,%g %g,%g %g,%g" fill="none" stroke="#4a4a4a" stroke-width="1.4"%s marker-end="url(#arrow)"/>`, x1, y1, mid, y1, mid, y2, x2-2, y2, dash)
	}
	for i, r := range m.Routes {
		for _, f := range r.From {
			if e := entries[f]; e != nil {
				edge(e, routes[i], false)
			}
		}
		seen := map[string]bool{}
		for _, d := range r.To {
			if s := services[d.Service]; s != nil && !seen[d.Service] {
				seen[d.Service] = true
				edge(routes[i], s, false)
			}
		}
		if r.Mirror != "" {
			if s := services[strings.Fields(r.Mirror)[0]]; s != nil {
				edge(routes[i], s, true)
			}
		}
	}
	for _, col := range [][]*box{col0, col1, col2} {
		for _, b := range col {
			fmt.Fprintf(&sb, `<g><rect x="%g" y="%g" width="%g" height="%g" rx="6" fill="%s" stroke="#5b6b82"/>`, b.x, b.y, b.w, b.h, b.fill)
			for i, l := range b.lines {
				fill, weight := "#1a1a1a", "normal"
				switch l.class {
				case "title":
					weight = "bold"
				case "weight":
					fill, weight = "#0b3d91", "bold"
				case "err":
					fill = "#a00018"
				case "note":
					fill = "#333333"
				}
				fmt.Fprintf(&sb, `<text x="%g" y="%g" fill="%s" font-weight="%s" font-size="13">%s</text>`,
					b.x+8, b.y+padY+lineH*float64(i)+13, fill, weight, html.EscapeString(l.text))
			}
			sb.WriteString(`</g>`)
		}
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

func subsetsText(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return " · subsets " + strings.Join(s, ", ")
}
