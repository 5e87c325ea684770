package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/dtr"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/imagevolume"
	"github.com/docker-dtr/docker-dtr/pkg/restore"
	"github.com/docker/cli/cli/command"
	"gotest.tools/v3/assert"
)

func TestImagePlan(t *testing.T) {
	rep := &dtr.Replica{ID: "0123456789ab", Node: "node1"}
	vol := &imagevolume.Volume{Replica: rep, Name: "dtr-registry-0123456789ab"}
	plan := func(empty bool, opts restoreOptions, agentErr ...error) (string, restore.ImagePlan) {
		t.Helper()
		var out bytes.Buffer
		dcli, err := command.NewDockerCli(command.WithInputStream(io.NopCloser(strings.NewReader(""))), command.WithOutputStream(&out), command.WithErrorStream(io.Discard))
		assert.NilError(t, err)
		safety := ""
		if !empty && !opts.safety.skip {
			safety = "/backups/safety-images-0123456789ab-20250101T000000Z.tar"
		}
		r := restore.NewImages(&restore.Images{Name: "backup-images.tar", Report: &imagearchive.Report{Totals: imagearchive.Totals{Files: 45, Bytes: 53 << 20}}, Replica: rep, Volume: vol, NoSafety: opts.safety.skip}, empty, safety)
		if len(agentErr) > 0 {
			r.AgentErr = agentErr[0]
		}
		r.Plan.Stop = []string{"dtr-registry-0123456789ab", "dtr-nginx-0123456789ab"}
		assert.NilError(t, printImagePlan(dcli, opts, r))
		var got restore.ImagePlan
		if opts.format == "json" {
			assert.NilError(t, json.Unmarshal(out.Bytes(), &got))
		}
		return out.String(), got
	}

	text, _ := plan(false, restoreOptions{force: true})
	assert.Equal(t, text, `Dry run: restoring backup-images.tar into volume dtr-registry-0123456789ab of replica 0123456789ab on node node1 would:
  save what the volume holds now to /backups/safety-images-0123456789ab-20250101T000000Z.tar (a safety backup, not encrypted)
  stop dtr-registry-0123456789ab, dtr-nginx-0123456789ab
  write 45 files, 53.0 MiB
  check every file against the manifest as it is written
  read the volume back and check it against the manifest (it held files before)
  if writing fails: empty the volume and put the safety backup back
  start dtr-registry-0123456789ab, dtr-nginx-0123456789ab again
`)
	text, _ = plan(false, restoreOptions{})
	assert.Assert(t, strings.Contains(text, "  refuse: the volume is not empty (--force writes over it; files the backup does not hold stay)\n"), text)
	text, _ = plan(false, restoreOptions{force: true, safety: safetyOptions{skip: true}})
	assert.Assert(t, strings.Contains(text, "  write over what the volume holds without a safety backup (--no-safety-backup)\n"), text)
	assert.Assert(t, !strings.Contains(text, "if writing fails"), text)
	text, _ = plan(true, restoreOptions{}, errors.New("this docker-dtr (/usr/local/bin/docker-dtr) is not a linux program and cannot run on node node1 (linux/amd64): pass --agent-binary"))
	assert.Assert(t, strings.Contains(text, "  refuse: putting the volume back if writing fails runs this plugin as an agent on node node1: this docker-dtr (/usr/local/bin/docker-dtr) is not a linux program"), text)
	text, _ = plan(true, restoreOptions{})
	assert.Assert(t, !strings.Contains(text, "refuse") && !strings.Contains(text, "safety"), text)
	assert.Assert(t, strings.Contains(text, "  if writing fails: empty the volume again\n"), text)
	assert.Assert(t, !strings.Contains(text, "read the volume back"), "an emptied volume holds only what was written: %s", text)

	_, got := plan(false, restoreOptions{format: "json", force: true})
	assert.Equal(t, got.SafetyBackup, "/backups/safety-images-0123456789ab-20250101T000000Z.tar")
	assert.Equal(t, got.SafetyProtection, "not encrypted")
	assert.Equal(t, got.Files, int64(45))
	_, got = plan(true, restoreOptions{format: "json"})
	assert.Equal(t, got.SafetyBackup, "", "an empty volume needs none")
	assert.Assert(t, got.VolumeEmpty)
}

// --to-volume is for image backups: given a metadata backup, the restore
// stops at wrong usage (2), naming the file, before it connects.
func TestToVolumeMetadataBackup(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	file := filepath.Join(t.TempDir(), "backup-metadata.tar")
	backuptest.WriteMetadataBackup(t, file, backuptest.Day(1))
	_, errOut, code := run(t, nil, "backup", "restore", "--to-volume", "--rethinkdb-addr", "127.0.0.1:1", "--dtr-version", "2.9.4", file)
	assert.Equal(t, code, 2, errOut)
	assert.Check(t, strings.Contains(errOut, "--to-volume: "+file+" is a metadata backup; the flag is for image backups"), errOut)
}
