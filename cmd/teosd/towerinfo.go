package main

import (
	"net"
	"os"
	"strconv"

	"github.com/teos-go/teos/internal/api/grpcapi"
	"github.com/teos-go/teos/internal/config"
	"github.com/teos-go/teos/internal/frontend"
)

// instanceName names this instance to the others sharing its database (get_tower_info's
// instance and leader): the host and the public API's address.
func instanceName(cfg *config.Config) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + "/" + net.JoinHostPort(cfg.APIBind, strconv.Itoa(int(cfg.APIPort)))
}

// Leadership is what get_tower_info says of this instance's role.
func (r *roles) Leadership() grpcapi.Leadership {
	leading, _ := r.el.Leading()
	return grpcapi.Leadership{Leading: leading, Instance: r.el.Name(), Leader: r.el.Leader()}
}

// leadershipOf returns the role hook of a chain runner that takes part in an election (the
// shared database's), nil (standalone) for a plain chain monitor.
func leadershipOf(mon chainRunner) func() grpcapi.Leadership {
	if l, ok := mon.(interface{ Leadership() grpcapi.Leadership }); ok {
		return l.Leadership
	}
	return nil
}

// frontEndsInfo returns get_tower_info's front-end hook: the core service gets plain numbers,
// never the front ends themselves.
func frontEndsInfo(fes []*frontend.Instance) func() ([]grpcapi.FrontEnd, error) {
	return func() ([]grpcapi.FrontEnd, error) {
		out := make([]grpcapi.FrontEnd, 0, len(fes))
		for _, fe := range fes {
			info := grpcapi.FrontEnd{Name: fe.Name}
			if fe.Info != nil {
				i, err := fe.Info()
				if err != nil {
					return nil, err
				}
				info.Addresses, info.Sessions, info.StateUpdates, info.JusticeTxs = i.Addresses, i.Sessions, i.StateUpdates, i.JusticeTxs
			}
			out = append(out, info)
		}
		return out, nil
	}
}
