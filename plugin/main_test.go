package plugin

import (
	"os"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/rethinktest"
)

func TestMain(m *testing.M) {
	rethinktest.ServeIfChild()
	os.Exit(m.Run())
}
