package imagevolume

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/docker-dtr/docker-dtr/pkg/agent"
)

var sizeJob = agentJob{prefix: "docker-dtr-du-", args: []string{"--du", MountPoint}, readOnly: true, verb: "measure", doing: "measuring"}

// Size measures what the volume (or its bucket) holds, in a helper of its
// own: one from the registry's image mounts the volume read-only, with no
// network and no logs, and runs this plugin's own binary ("agent --du
// /storage"), which walks it following no link. Walking costs a stat per
// file, little next to reading every byte through the archive API. The
// helper is removed whatever happens. A backup's read measures in its
// own helper instead (ReadSized).
// agentBinary is --agent-binary, or empty for this plugin's own binary.
func (v *Volume) Size(ctx context.Context, api API, agentBinary string) (agent.Usage, error) {
	var u agent.Usage
	out, err := v.runAgent(ctx, api, agentBinary, sizeJob, nil)
	if err != nil {
		return u, err
	}
	line := strings.TrimSpace(out)
	if err := json.Unmarshal([]byte(line), &u); err != nil {
		return u, fmt.Errorf("measuring volume %s: the agent printed %q, not its sizes: %v (is --agent-binary a docker-dtr of this version?)", v.Name, line, err)
	}
	return u, nil
}
