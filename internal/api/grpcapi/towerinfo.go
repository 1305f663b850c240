package grpcapi

import teosv2 "github.com/teos-go/teos/proto/teos/v2"

// Leadership is this instance's place among the instances sharing a database, for
// get_tower_info.
type Leadership struct {
	Leading bool
	// Instance is this instance's name, Leader the leading one's ("" while unknown).
	Instance, Leader string
}

// FrontEnd is what get_tower_info shows of a front end besides the teos API (lnd's). The
// composition root fills it, so this package knows nothing of the front ends themselves.
type FrontEnd struct {
	Name string
	// Addresses as the front end's clients write them ("<tower_id>@host:port" for lnd).
	Addresses                          []string
	Sessions, StateUpdates, JusticeTxs uint64
}

// towerInfoExtensions fills get_tower_info's teos-go fields (7 on).
func (p *Private) towerInfoExtensions(resp *teosv2.GetTowerInfoResponse) error {
	resp.Role = teosv2.TowerRole_TOWER_ROLE_STANDALONE
	if p.cfg.Leadership != nil {
		l := p.cfg.Leadership()
		resp.Role = teosv2.TowerRole_TOWER_ROLE_FOLLOWER
		if l.Leading {
			resp.Role = teosv2.TowerRole_TOWER_ROLE_LEADER
		}
		resp.Instance, resp.Leader = l.Instance, l.Leader
	}
	if p.cfg.FrontEnds == nil {
		return nil
	}
	fes, err := p.cfg.FrontEnds()
	if err != nil {
		return err
	}
	for _, fe := range fes {
		resp.FrontEnds = append(resp.FrontEnds, &teosv2.FrontEndInfo{
			Name: fe.Name, Addresses: fe.Addresses,
			Sessions: fe.Sessions, StateUpdates: fe.StateUpdates, JusticeTxs: fe.JusticeTxs,
		})
	}
	return nil
}
