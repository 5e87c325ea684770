package dtr

import (
	"fmt"
	"sort"
	"strings"
)

// Cluster is every replica the Docker endpoint sees, sorted by id.
type Cluster struct {
	Replicas []*Replica `json:"replicas"`
}

// Replica returns the replica with this id, or nil.
func (c *Cluster) Replica(id string) *Replica {
	for _, r := range c.Replicas {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Healthy returns the healthy replicas' ids, sorted.
func (c *Cluster) Healthy() []string {
	var ids []string
	for _, r := range c.Replicas {
		if r.Healthy {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// Quorum is DTR's majority rule: n/2+1 of n replicas must be healthy.
type Quorum struct {
	Replicas int  `json:"replicas"`
	Healthy  int  `json:"healthy"`
	Needed   int  `json:"needed"`
	OK       bool `json:"ok"`
}

// Quorum says whether a majority of replicas is healthy; replicas removed
// from the database (Replica.Removed) do not count.
func (c *Cluster) Quorum() Quorum {
	n := 0
	for _, r := range c.Replicas {
		if r.Removed == "" {
			n++
		}
	}
	q := Quorum{Replicas: n, Healthy: len(c.Healthy()), Needed: n/2 + 1}
	q.OK = q.Healthy >= q.Needed
	return q
}

// Versions maps each DTR version to the replicas running it.
func (c *Cluster) Versions() map[string][]string {
	v := map[string][]string{}
	for _, r := range c.Replicas {
		v[r.Version] = append(v[r.Version], r.ID)
	}
	return v
}

// VersionSkew describes replicas running different versions, or "".
func (c *Cluster) VersionSkew() string {
	v := c.Versions()
	if len(v) < 2 {
		return ""
	}
	var parts []string
	for version, ids := range v {
		if version == "" {
			version = "unknown"
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", version, strings.Join(ids, ", ")))
	}
	sort.Strings(parts)
	return "replicas run different DTR versions: " + strings.Join(parts, "; ")
}

// Choose picks the replica to work on: the one named, which must be healthy,
// or else the healthy replica with the lowest id, so that backups come from
// the same replica every time, as DTR's documentation asks.
func (c *Cluster) Choose(id string) (*Replica, error) {
	healthy := c.Healthy()
	if id != "" {
		r := c.Replica(id)
		if r == nil {
			return nil, fmt.Errorf("replica %s not found: this DTR's replicas are %s", id, c.describe())
		}
		if !r.Healthy {
			return nil, fmt.Errorf("replica %s is not healthy (%s): %s", id, strings.Join(r.Problems, "; "), healthyHint(healthy))
		}
		return r, nil
	}
	if len(healthy) == 0 {
		return nil, fmt.Errorf("no healthy DTR replica: %s", c.describe())
	}
	return c.Replica(healthy[0]), nil
}

func healthyHint(healthy []string) string {
	if len(healthy) == 0 {
		return "no replica is healthy"
	}
	return "healthy replicas: " + strings.Join(healthy, ", ")
}

// describe lists the replicas with their state, for error messages.
func (c *Cluster) describe() string {
	var parts []string
	for _, r := range c.Replicas {
		if r.Healthy {
			parts = append(parts, r.ID+" (healthy)")
		} else {
			parts = append(parts, r.ID+" ("+strings.Join(r.Problems, "; ")+")")
		}
	}
	return strings.Join(parts, ", ")
}

func joinSorted(set map[string]bool) string {
	var s []string
	for k := range set {
		s = append(s, k)
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
