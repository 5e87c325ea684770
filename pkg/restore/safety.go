package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

// SafetyPath is a new file name for the safety backup of kind ("metadata"
// or "images") of replica: in dir, or beside input (the current directory
// for standard input, "-"). It never names an existing file, even one of
// the same second.
func SafetyPath(dir, input, kind, replica string) string {
	if dir == "" {
		dir = "."
		if input != "-" {
			dir = filepath.Dir(input)
		}
	}
	if replica == "" {
		replica = "direct"
	}
	base := fmt.Sprintf("safety-%s-%s-%s", kind, replica, time.Now().UTC().Format("20060102T150405Z"))
	p := filepath.Join(dir, base+".tar")
	for n := 2; ; n++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s-%d.tar", base, n))
	}
}

// Protected is a target that says how its safety backup is protected.
type Protected interface {
	SafetyProtection() string
}

// SafetyProtection says how t's safety backup is (or, before SaveSafety,
// will be) protected, in a few words for a plan, a log or a journal:
// "encrypted with the backup's passphrase", "encrypted to key 0x…", or
// "not encrypted"; empty when there is no safety backup.
func SafetyProtection(t Target) string {
	if p, ok := t.(Protected); ok && t.SafetyPath() != "" {
		return p.SafetyProtection()
	}
	return ""
}

// sealedHow is SafetyProtection of a safety backup sealed with seal (nil:
// in clear).
func sealedHow(seal *backupfile.Protection) string {
	if seal == nil {
		return "not encrypted"
	}
	return seal.How
}

// checkSeal refuses, before anything is changed, a seal that cannot seal:
// the identity that opened the backup has no key that can encrypt.
func checkSeal(seal *backupfile.Protection) error {
	if seal == nil || seal.Err == nil {
		return nil
	}
	return fmt.Errorf("the safety backup cannot be encrypted like the backup it replaces: %w; nothing was changed (--safety-encryption none writes it in clear, or --no-safety-backup gives it up)", seal.Err)
}

// safetyPathFor is SafetyPath, ending in .tar.gpg when the file is sealed
// (an OpenPGP message, as gpg names them).
func safetyPathFor(dir, input, kind, replica string, seal *backupfile.Protection) string {
	p := SafetyPath(dir, input, kind, replica)
	if seal == nil {
		return p
	}
	for n := 2; ; n++ {
		if _, err := os.Lstat(p + ".gpg"); errors.Is(err, os.ErrNotExist) {
			return p + ".gpg"
		}
		p = strings.TrimSuffix(p, ".tar") + fmt.Sprintf("-%d.tar", n)
	}
}

// saveSafetyStreamed writes the safety backup at path, all of it or
// nothing, sealed with seal unless it is nil, and has check verify the
// copy, read in passes (Input.Pass): a sealed one is decrypted as it is
// read, with no plaintext file. These are the steps every target's
// SaveSafety takes before anything is changed. explain adds what the
// target knows to an error of write or of committing the file. Once its
// own temporary file is made, it removes those that killed runs left in
// the directory, and says so with prog.
func saveSafetyStreamed(prog *progress.Printer, path string, seal *backupfile.Protection, write func(io.Writer) error, explain func(error) error, check func(*backupfile.Input) error) error {
	return saveSafetyThen(prog, path, seal, write, explain, func() error { return withSafetyStreamed(path, seal, check) })
}

// saveSafetyThen writes the safety backup as saveSafetyStreamed says, then has
// verify check the copy.
func saveSafetyThen(prog *progress.Printer, path string, seal *backupfile.Protection, write func(io.Writer) error, explain func(error) error, verify func() error) error {
	if err := checkSeal(seal); err != nil {
		return err
	}
	var to *crypt.Recipients
	if seal != nil {
		to = &seal.To
	}
	out, err := backupfile.Create(path, nil, to, false)
	if err != nil {
		return fmt.Errorf("cannot write the safety backup (choose another place with --safety-dir, or --no-safety-backup): %w; nothing was changed", err)
	}
	defer out.Abort()
	for _, p := range out.Swept {
		prog.Step("removed %s, the temporary file of a run that was killed", p)
	}
	for _, err := range out.SweepErrors {
		prog.Warn("cannot remove the temporary file of a run that was killed: %v", err)
	}
	err = write(out)
	if err == nil {
		err = out.Commit()
	}
	if err != nil {
		return fmt.Errorf("saving the safety backup %s failed, nothing was changed: %w", path, explain(err))
	}
	if err := verify(); err != nil {
		return fmt.Errorf("the safety backup %s did not verify, nothing was changed: %w", path, err)
	}
	return nil
}

// withSafetyStreamed opens the safety backup at path for fn, to be read
// in passes (Input.Pass), each a fresh decryption with seal's secrets when
// it is sealed, and closes it after.
func withSafetyStreamed(path string, seal *backupfile.Protection, fn func(*backupfile.Input) error) error {
	in, err := backupfile.Open(path, backupfile.OpenOptions{Protection: seal, Passphrase: func(string) ([]byte, error) {
		return nil, errors.New("the safety backup is encrypted, but this restore holds no secret for it")
	}})
	if err != nil {
		return err
	}
	defer in.Close()
	return fn(in)
}
