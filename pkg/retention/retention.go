// Package retention decides which backups a keep policy keeps, the way
// restic's `forget` does: --keep-last n keeps the n newest; --keep-daily n
// keeps the newest backup of each of the n newest days that have one, and
// --keep-weekly n the same per ISO week. Days and weeks are counted in a
// given location (local time for people), so a backup at 00:30 belongs to
// the day the operator sees on the clock. A backup may be kept by several
// rules; every rule that keeps it is named. When a daily or weekly rule
// finds fewer buckets than it may keep, the oldest backup is kept as well,
// as recent restic versions do, so that the oldest data is not lost while the
// series is still young.
//
// The package is pure: it reads no files and removes nothing.
package retention

import (
	"fmt"
	"sort"
	"time"
)

// Policy is how many backups each rule keeps; 0 turns a rule off.
type Policy struct {
	Last   int `json:"keepLast"`
	Daily  int `json:"keepDaily"`
	Weekly int `json:"keepWeekly"`
}

// Validate refuses negative counts and a policy that keeps nothing.
func (p Policy) Validate() error {
	for _, r := range []struct {
		flag string
		n    int
	}{{"--keep-last", p.Last}, {"--keep-daily", p.Daily}, {"--keep-weekly", p.Weekly}} {
		if r.n < 0 {
			return fmt.Errorf("%s %d: give a count of 0 or more", r.flag, r.n)
		}
	}
	if p.Last == 0 && p.Daily == 0 && p.Weekly == 0 {
		return fmt.Errorf("give at least one of --keep-last, --keep-daily, --keep-weekly above 0: a policy that keeps nothing is refused")
	}
	return nil
}

// Item is one backup: an identifier (a file name) and when it was taken.
type Item struct {
	ID   string
	Time time.Time
}

// Decision is what the policy decided for one item.
type Decision struct {
	Item
	Keep bool
	// Rules names every rule that keeps it: "last 1", "daily 2026-11-25",
	// "weekly 2026-W48", "oldest daily", "oldest weekly".
	Rules []string
}

// Apply decides for every item, and returns the decisions newest first.
// Items of the same time are ordered by ID, so the outcome never depends
// on the order they were given in.
func Apply(items []Item, p Policy, loc *time.Location) []Decision {
	if loc == nil {
		loc = time.Local
	}
	out := make([]Decision, len(items))
	for i, it := range items {
		out[i] = Decision{Item: it}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].ID < out[j].ID
	})
	type bucketRule struct {
		name  string
		left  int
		last  string
		label func(time.Time) string
	}
	rules := []*bucketRule{
		{name: "daily", left: p.Daily, label: func(t time.Time) string { return t.Format("2006-01-02") }},
		{name: "weekly", left: p.Weekly, label: func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		}},
	}
	for i := range out {
		d := &out[i]
		if i < p.Last {
			d.Rules = append(d.Rules, fmt.Sprintf("last %d", i+1))
		}
		t := d.Time.In(loc)
		for _, r := range rules {
			if r.left == 0 {
				continue
			}
			// Newest first: the first item of a new bucket is its newest.
			if b := r.label(t); b != r.last {
				r.last = b
				r.left--
				d.Rules = append(d.Rules, r.name+" "+b)
			}
		}
	}
	// A young series: the oldest backup stands in for the buckets to come.
	if n := len(out); n > 0 {
		oldest := &out[n-1]
		for _, r := range rules {
			if r.left > 0 && !hasRule(oldest.Rules, r.name+" ") {
				oldest.Rules = append(oldest.Rules, "oldest "+r.name)
			}
		}
	}
	for i := range out {
		out[i].Keep = len(out[i].Rules) > 0
	}
	return out
}

func hasRule(rules []string, prefix string) bool {
	for _, r := range rules {
		if len(r) >= len(prefix) && r[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}
