package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	failed := errors.New("backup failed")
	for _, tc := range []struct {
		err         error
		interrupted bool
		want        int
	}{
		{nil, false, OK},
		{nil, true, OK},
		{failed, false, Failure},
		{failed, true, Interrupted},
		{UsageError(failed), false, Usage},
		{UsageError(failed), true, Usage},
		{ByHandError(failed), false, ByHand},
		{ByHandError(failed), true, ByHand},
		{fmt.Errorf("wrapped: %w", ByHandError(failed)), false, ByHand},
	} {
		if got := Of(tc.err, tc.interrupted); got != tc.want {
			t.Errorf("Of(%v, %v) = %d, want %d", tc.err, tc.interrupted, got, tc.want)
		}
	}
	if got := ByHandError(failed).Error(); got != failed.Error() {
		t.Errorf("message %q, want %q", got, failed.Error())
	}
}
