package retention

import (
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// at is a time in loc, written as people read it.
func at(t *testing.T, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// kept renders the decisions as "ID: rule, rule" for those kept, in order.
func kept(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.ID+": "+strings.Join(d.Rules, ", "))
		}
	}
	return out
}

func TestApply(t *testing.T) {
	utc := time.UTC
	// Two hours ahead of UTC, without DST, so days split differently.
	plus2 := time.FixedZone("UTC+2", 2*3600)
	type in struct{ id, time string }
	cases := []struct {
		name  string
		items []in
		loc   *time.Location
		p     Policy
		want  []string
	}{
		{
			name:  "keep-last keeps the n newest, whatever the input order",
			items: []in{{"b", "2026-11-02 06:00"}, {"d", "2026-11-04 06:00"}, {"a", "2026-11-01 06:00"}, {"c", "2026-11-03 06:00"}},
			loc:   utc, p: Policy{Last: 2},
			want: []string{"d: last 1", "c: last 2"},
		},
		{
			name:  "keep-last larger than the series keeps all",
			items: []in{{"a", "2026-11-01 06:00"}, {"b", "2026-11-02 06:00"}},
			loc:   utc, p: Policy{Last: 5},
			want: []string{"b: last 1", "a: last 2"},
		},
		{
			name: "keep-daily keeps the newest of each day, counting days that have backups",
			items: []in{
				{"mon-06", "2026-11-23 06:00"}, {"mon-18", "2026-11-23 18:00"},
				{"tue-06", "2026-11-24 06:00"},
				// no backup on Wednesday: it is not counted
				{"thu-06", "2026-11-26 06:00"}, {"thu-12", "2026-11-26 12:00"},
			},
			loc: utc, p: Policy{Daily: 3},
			want: []string{"thu-12: daily 2026-11-26", "tue-06: daily 2026-11-24", "mon-18: daily 2026-11-23"},
		},
		{
			name: "a daily rule not yet filled keeps the oldest as well",
			items: []in{
				{"mon-06", "2026-11-23 06:00"}, {"mon-18", "2026-11-23 18:00"},
				{"tue-06", "2026-11-24 06:00"},
			},
			loc: utc, p: Policy{Daily: 4},
			want: []string{"tue-06: daily 2026-11-24", "mon-18: daily 2026-11-23", "mon-06: oldest daily"},
		},
		{
			name: "keep-daily satisfied keeps no oldest",
			items: []in{
				{"a", "2026-11-23 06:00"}, {"b", "2026-11-24 06:00"}, {"c", "2026-11-25 06:00"},
			},
			loc: utc, p: Policy{Daily: 2},
			want: []string{"c: daily 2026-11-25", "b: daily 2026-11-24"},
		},
		{
			name: "days are counted in the given location",
			// 22:30 and 23:30 UTC are 00:30 and 01:30 the next day in UTC+2.
			items: []in{{"late", "2026-11-24 22:30"}, {"later", "2026-11-24 23:30"}, {"morning", "2026-11-24 06:00"}},
			loc:   plus2, p: Policy{Daily: 2},
			want: []string{"later: daily 2026-11-25", "morning: daily 2026-11-24"},
		},
		{
			name:  "the same backups by UTC days",
			items: []in{{"late", "2026-11-24 22:30"}, {"later", "2026-11-24 23:30"}, {"morning", "2026-11-24 06:00"}},
			loc:   utc, p: Policy{Daily: 2},
			want: []string{"later: daily 2026-11-24", "morning: oldest daily"},
		},
		{
			name: "keep-weekly buckets by ISO week, across a year's end",
			items: []in{
				// 2026-12-28 (Monday) to 2027-01-03 (Sunday) is ISO week 2026-W53.
				{"w53-mon", "2026-12-28 06:00"}, {"w53-sun", "2027-01-03 06:00"},
				{"w01-mon", "2027-01-04 06:00"}, {"w01-wed", "2027-01-06 06:00"},
				{"w52-sun", "2026-12-27 06:00"},
			},
			loc: utc, p: Policy{Weekly: 2},
			want: []string{"w01-wed: weekly 2027-W01", "w53-sun: weekly 2026-W53"},
		},
		{
			name: "a week starts on Monday in local time",
			// Sunday 23:00 UTC is Monday 01:00 in UTC+2: the next week.
			items: []in{{"sun-late", "2026-11-29 23:00"}, {"sun-noon", "2026-11-29 12:00"}},
			loc:   plus2, p: Policy{Weekly: 2},
			want: []string{"sun-late: weekly 2026-W49", "sun-noon: weekly 2026-W48"},
		},
		{
			name: "rules combine, and a backup kept by several names them all",
			items: []in{
				{"d1", "2026-11-16 06:00"}, {"d2", "2026-11-17 06:00"}, {"d3", "2026-11-23 06:00"},
				{"d4", "2026-11-24 06:00"}, {"d5", "2026-11-25 06:00"}, {"d5b", "2026-11-25 18:00"},
			},
			loc: utc, p: Policy{Last: 1, Daily: 2, Weekly: 2},
			want: []string{
				"d5b: last 1, daily 2026-11-25, weekly 2026-W48",
				"d4: daily 2026-11-24",
				"d2: weekly 2026-W47",
			},
		},
		{
			name:  "ties: the same time is ordered by name, and counted once per bucket",
			items: []in{{"y", "2026-11-25 06:00"}, {"x", "2026-11-25 06:00"}, {"z", "2026-11-24 06:00"}},
			loc:   utc, p: Policy{Last: 1, Daily: 5},
			want: []string{"x: last 1, daily 2026-11-25", "z: daily 2026-11-24"},
		},
		{
			name:  "nothing to decide",
			items: nil, loc: utc, p: Policy{Last: 3},
			want: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var items []Item
			for _, it := range tc.items {
				items = append(items, Item{ID: it.id, Time: at(t, time.UTC, it.time)})
			}
			ds := Apply(items, tc.p, tc.loc)
			assert.DeepEqual(t, kept(ds), tc.want)
			assert.Equal(t, len(ds), len(items), "every item is decided")
			for i := 1; i < len(ds); i++ {
				assert.Assert(t, !ds[i].Time.After(ds[i-1].Time), "newest first")
			}
		})
	}
}

func TestApplyNilLocationIsLocal(t *testing.T) {
	items := []Item{{ID: "a", Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}}
	ds := Apply(items, Policy{Daily: 1}, nil)
	assert.DeepEqual(t, ds[0].Rules, []string{"daily " + items[0].Time.In(time.Local).Format("2006-01-02")})
}

func TestValidate(t *testing.T) {
	assert.NilError(t, Policy{Last: 1}.Validate())
	assert.NilError(t, Policy{Weekly: 4}.Validate())
	assert.ErrorContains(t, Policy{}.Validate(), "at least one of --keep-last")
	assert.ErrorContains(t, Policy{Last: 2, Daily: -1}.Validate(), "--keep-daily -1")
	assert.ErrorContains(t, Policy{Weekly: -3}.Validate(), "--keep-weekly -3")
}
