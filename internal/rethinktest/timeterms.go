package rethinktest

import (
	"math"
	"strings"
	"time"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

func nowTime() Time {
	return Time{Epoch: roundMillis(float64(time.Now().UnixNano()) / 1e9), TZ: "+00:00"}
}

// tzOffset parses "+HH:MM" into seconds east of UTC.
func tzOffset(tz string) int {
	if len(tz) != 6 {
		return 0
	}
	h := int(tz[1]-'0')*10 + int(tz[2]-'0')
	m := int(tz[4]-'0')*10 + int(tz[5]-'0')
	off := h*3600 + m*60
	if tz[0] == '-' {
		off = -off
	}
	return off
}

func (t Time) goTime() time.Time {
	sec, frac := math.Modf(t.Epoch)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9))).In(time.FixedZone("", tzOffset(t.TZ)))
}

var isoLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04Z07:00",
	"20060102T150405.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
	"20060102",
}

func parseISO8601(s, defTZ string) (Time, error) {
	for _, layout := range isoLayouts {
		loc := time.UTC
		hasZone := strings.Contains(layout, "Z07")
		if !hasZone && defTZ != "" {
			tz, err := normTZ(defTZ)
			if err != nil {
				return Time{}, err
			}
			loc = time.FixedZone("", tzOffset(tz))
		}
		tm, err := time.ParseInLocation(layout, s, loc)
		if err != nil {
			continue
		}
		if !hasZone && defTZ == "" {
			return Time{}, logicErr("ISO 8601 string has no time zone, and no default time zone was provided.")
		}
		_, off := tm.Zone()
		sign := byte('+')
		if off < 0 {
			sign, off = '-', -off
		}
		tz := string([]byte{sign, byte('0' + off/36000), byte('0' + off/3600%10), ':', byte('0' + off%3600/600), byte('0' + off%600/60)})
		return Time{Epoch: roundMillis(float64(tm.UnixNano()) / 1e9), TZ: tz}, nil
	}
	return Time{}, logicErr("Invalid date string `%s`.", s)
}

func registerTimeTerms() {
	reg(p.Term_BINARY, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		d, err := e.evalDatum(args[0])
		if err != nil {
			return nil, err
		}
		switch x := d.(type) {
		case string:
			return Binary(x), nil
		case Binary:
			return x, nil
		}
		return nil, expectType(d, "STRING")
	})
	reg(p.Term_EPOCH_TIME, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		f, err := e.evalNumber(args[0])
		if err != nil {
			return nil, err
		}
		return Time{Epoch: roundMillis(f), TZ: "+00:00"}, nil
	})
	reg(p.Term_NOW, 0, 0, nil, func(e *env, _ []any, _ map[string]any) (any, error) {
		if e.q == nil {
			return nowTime(), nil
		}
		return e.q.now, nil
	})
	reg(p.Term_ISO8601, 1, 1, []string{"default_timezone"}, func(e *env, args []any, opts map[string]any) (any, error) {
		s, err := e.evalString(args[0])
		if err != nil {
			return nil, err
		}
		def := ""
		if raw, ok := opts["default_timezone"]; ok {
			if def, err = e.evalString(raw); err != nil {
				return nil, err
			}
		}
		return parseISO8601(s, def)
	})
	reg(p.Term_TO_EPOCH_TIME, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		d, err := e.evalDatum(args[0])
		if err != nil {
			return nil, err
		}
		t, ok := d.(Time)
		if !ok {
			return nil, expectType(d, "PTYPE<TIME>")
		}
		return t.Epoch, nil
	})
	reg(p.Term_TO_ISO8601, 1, 1, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		d, err := e.evalDatum(args[0])
		if err != nil {
			return nil, err
		}
		t, ok := d.(Time)
		if !ok {
			return nil, expectType(d, "PTYPE<TIME>")
		}
		return t.goTime().Format("2006-01-02T15:04:05.000-07:00"), nil
	})
	reg(p.Term_TIME, 4, 7, nil, func(e *env, args []any, _ map[string]any) (any, error) {
		if len(args) != 4 && len(args) != 7 {
			return nil, logicErr("Expected between 4 and 7 arguments but found %d.", len(args))
		}
		nums := make([]float64, len(args)-1)
		for i := range nums {
			f, err := e.evalNumber(args[i])
			if err != nil {
				return nil, err
			}
			nums[i] = f
		}
		tzs, err := e.evalString(args[len(args)-1])
		if err != nil {
			return nil, err
		}
		tz, err := normTZ(tzs)
		if err != nil {
			return nil, err
		}
		var h, mi, sec float64
		if len(nums) == 6 {
			h, mi, sec = nums[3], nums[4], nums[5]
		}
		whole, frac := math.Modf(sec)
		tm := time.Date(int(nums[0]), time.Month(int(nums[1])), int(nums[2]), int(h), int(mi), int(whole), 0, time.FixedZone("", tzOffset(tz)))
		return Time{Epoch: roundMillis(float64(tm.Unix()) + frac), TZ: tz}, nil
	})
}
