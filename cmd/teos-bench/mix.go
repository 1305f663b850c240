package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The endpoints a mix may name, in report order.
const (
	epAdd      = "add_appointment"
	epGet      = "get_appointment"
	epInfo     = "get_subscription_info"
	epRegister = "register"
)

var mixNames = map[string]string{"add": epAdd, "get": epGet, "info": epInfo, "register": epRegister}

// mix is the share of each endpoint among the requests, as cumulative weights for picking.
type mix struct {
	endpoints  []string
	cumulative []float64
}

func parseMix(s string) (mix, error) {
	var m mix
	total := 0.0
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		name, weightText, ok := strings.Cut(strings.TrimSpace(part), "=")
		ep, known := mixNames[name]
		if !ok || !known {
			return m, fmt.Errorf("-mix %q: want name=weight with name one of add, get, info, register", part)
		}
		w, err := strconv.ParseFloat(weightText, 64)
		// NaN and Inf would make every cumulative share NaN, and pick would send everything
		// to the last endpoint.
		if err != nil || !(w >= 0) || math.IsInf(w, 1) {
			return m, fmt.Errorf("-mix %q: weight must be a number >= 0", part)
		}
		if seen[ep] {
			return m, fmt.Errorf("-mix names %s twice", name)
		}
		seen[ep] = true
		if w == 0 {
			continue
		}
		total += w
		m.endpoints = append(m.endpoints, ep)
		m.cumulative = append(m.cumulative, total)
	}
	if total == 0 {
		return m, fmt.Errorf("-mix %q has no endpoint with a positive weight", s)
	}
	for i := range m.cumulative {
		m.cumulative[i] /= total
	}
	return m, nil
}

// pick maps u in [0, 1) to an endpoint.
func (m mix) pick(u float64) string {
	for i, c := range m.cumulative {
		if u < c {
			return m.endpoints[i]
		}
	}
	return m.endpoints[len(m.endpoints)-1]
}

func (m mix) has(ep string) bool {
	for _, e := range m.endpoints {
		if e == ep {
			return true
		}
	}
	return false
}
