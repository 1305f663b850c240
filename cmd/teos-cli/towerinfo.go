package main

import teosv2 "github.com/teos-go/teos/proto/teos/v2"

// gettowerinfo's teos-go keys, after rust-teos's (docs/EXTENSIONS.md). A tower that does not
// fill them (rust-teos) gets rust-teos's output unchanged.
type towerInfoExtJSON struct {
	Role string `json:"role,omitempty"`
	// Only for instances sharing a database; Leader is "" while unknown.
	Instance *string `json:"instance,omitempty"`
	Leader   *string `json:"leader,omitempty"`
	// Always there (maybe []) when Role is.
	FrontEnds *[]frontEndJSON `json:"front_ends,omitempty"`
}

type frontEndJSON struct {
	Name         string   `json:"name"`
	Addresses    []string `json:"addresses"`
	Sessions     uint64   `json:"sessions"`
	StateUpdates uint64   `json:"state_updates"`
	JusticeTxs   uint64   `json:"justice_txs"`
}

func towerInfoExt(resp *teosv2.GetTowerInfoResponse) towerInfoExtJSON {
	var ext towerInfoExtJSON
	switch resp.GetRole() {
	case teosv2.TowerRole_TOWER_ROLE_UNSPECIFIED:
		return ext
	case teosv2.TowerRole_TOWER_ROLE_STANDALONE:
		ext.Role = "standalone"
	case teosv2.TowerRole_TOWER_ROLE_LEADER:
		ext.Role = "leader"
	case teosv2.TowerRole_TOWER_ROLE_FOLLOWER:
		ext.Role = "follower"
	default:
		ext.Role = "unknown"
	}
	if ext.Role != "standalone" {
		instance, leader := resp.GetInstance(), resp.GetLeader()
		ext.Instance, ext.Leader = &instance, &leader
	}
	fes := make([]frontEndJSON, 0, len(resp.GetFrontEnds()))
	for _, fe := range resp.GetFrontEnds() {
		addrs := fe.GetAddresses()
		if addrs == nil {
			addrs = []string{}
		}
		fes = append(fes, frontEndJSON{
			Name: fe.GetName(), Addresses: addrs,
			Sessions: fe.GetSessions(), StateUpdates: fe.GetStateUpdates(), JusticeTxs: fe.GetJusticeTxs(),
		})
	}
	ext.FrontEnds = &fes
	return ext
}
