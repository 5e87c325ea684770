package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// The RethinkDB servers, the fixture and the test data set are for tests only.
func TestPluginDoesNotLinkTestPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/docker-dtr/docker-dtr/cmd/docker-dtr").Output()
	assert.NilError(t, err)
	deps := string(out)
	assert.Assert(t, strings.Contains(deps, "github.com/docker-dtr/docker-dtr/pkg/archive\n"), "the listing is real")
	for _, pkg := range []string{"internal/rethinkserver", "internal/dtrtest", "internal/dtrfixture", "gotest.tools"} {
		assert.Assert(t, !strings.Contains(deps, pkg), "%s is linked into the plugin", pkg)
	}
}
