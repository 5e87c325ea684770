package tunnel

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// elfArch names ELF machines as Go and image platforms do.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// checkAgent makes sure the binary at path can run in a linux container of
// arch: a static ELF executable for that machine. explicit says the path came
// from --agent-binary rather than being this plugin's own executable.
func checkAgent(path string, explicit bool, node, arch string) error {
	fix := fmt.Sprintf("pass --agent-binary with a static linux/%s build of docker-dtr ('make cross' writes bin/docker-dtr-linux-%s)", arch, arch)
	what := "this docker-dtr (" + path + ")"
	if explicit {
		what = "--agent-binary " + path
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such file: %s", what, fix)
		}
		return fmt.Errorf("%s: %v", what, err)
	}
	f, err := elf.Open(path)
	if err != nil {
		// Not ELF (a Mach-O or PE build, a script, a truncated file).
		return fmt.Errorf("%s is not a linux program and cannot run on node %s (linux/%s): %s", what, node, arch, fix)
	}
	defer f.Close()
	got := elfArch[f.Machine]
	if got == "" {
		got = f.Machine.String()
	}
	if got != arch {
		return fmt.Errorf("%s is a linux/%s program and cannot run on node %s (linux/%s): %s", what, got, node, arch, fix)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run in DTR's images: build it with CGO_ENABLED=0, or %s", what, fix)
		}
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is not an executable: %s", what, fix)
	}
	return nil
}

// agentBinary returns the path of the binary to run in the helper.
func agentBinary(flag string) (path string, explicit bool, err error) {
	if flag != "" {
		return flag, true, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", false, fmt.Errorf("finding this plugin's own binary: %v: pass --agent-binary", err)
	}
	return self, false, nil
}
