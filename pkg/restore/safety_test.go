package restore

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker-dtr/docker-dtr/internal/backuptest"
	"github.com/docker-dtr/docker-dtr/pkg/atomicfile"
	"github.com/docker-dtr/docker-dtr/pkg/backupfile"
	"github.com/docker-dtr/docker-dtr/pkg/crypt"
	"github.com/docker-dtr/docker-dtr/pkg/imagearchive"
	"github.com/docker-dtr/docker-dtr/pkg/progress"
)

func TestSafetyPathNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	first := SafetyPath(dir, "-", "metadata", "0123456789ab")
	if !regexp.MustCompile(`/safety-metadata-0123456789ab-\d{8}T\d{6}Z\.tar$`).MatchString(first) {
		t.Fatal(first)
	}
	if err := os.WriteFile(first, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if second := SafetyPath(dir, "-", "metadata", "0123456789ab"); second == first || filepath.Dir(second) != dir {
		t.Fatal(second)
	}

	// Beside the input by default; the current directory for stdin.
	beside := SafetyPath("", "/backups/b.tar", "images", "")
	if filepath.Dir(beside) != "/backups" || !regexp.MustCompile(`safety-images-direct-`).MatchString(beside) {
		t.Fatal(beside)
	}
	if got := filepath.Dir(SafetyPath("", "-", "images", "x")); got != "." {
		t.Fatal(got)
	}
}

func TestCheckVersion(t *testing.T) {
	var warned []string
	warn := func(format string, args ...any) { warned = append(warned, fmt.Sprintf(format, args...)) }
	if err := CheckVersion("b.tar", "2.9.4", "2.9.1", false, warn); err != nil || len(warned) != 0 {
		t.Fatal(err, warned)
	}
	if err := CheckVersion("b.tar", "2.9.4", "", false, warn); err != nil {
		t.Fatal("an unknown target version is not checked:", err)
	}
	err := CheckVersion("b.tar", "2.8.4", "2.9.1", false, warn)
	if want := "b.tar is a backup of DTR 2.8.4, the target is DTR 2.9.1: restore into the same major.minor version, or pass --allow-version-mismatch"; err == nil || err.Error() != want {
		t.Fatalf("%v, want %q", err, want)
	}
	if err := CheckVersion("b.tar", "2.8.4", "2.9.1", true, warn); err != nil || len(warned) != 1 || warned[0] != "restoring a backup of DTR 2.8.4 into DTR 2.9.1 (--allow-version-mismatch)" {
		t.Fatal(err, warned)
	}
}

// Saving a safety backup removes the temporary file of a killed run beside
// it, and says so, but not a running one's.
func TestSaveSafetySweepsAKilledRunsTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	killed := filepath.Join(dir, ".safety-metadata-direct-20261205T010000Z.tar.tmp-42")
	if err := os.WriteFile(killed, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	running, err := atomicfile.Create(filepath.Join(dir, "running.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer running.Abort()
	var log bytes.Buffer
	path := filepath.Join(dir, "safety.tar")
	err = saveSafetyStreamed(progress.NewMode(&log, progress.Plain), path, nil,
		func(w io.Writer) error { _, err := io.WriteString(w, "saved"); return err },
		func(err error) error { return err },
		func(*backupfile.Input) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "removed "+killed+", the temporary file of a run that was killed") {
		t.Fatalf("log: %s", log.String())
	}
	for _, p := range []string{path, running.Name()} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Fatalf("%s is left: %v", killed, err)
	}
}

// A safety backup sealed like the backup it replaces is never in clear on
// disk; its check and a rollback read it with the same secret, and
// without the secret it does not open.
func TestSealedSafetyBackup(t *testing.T) {
	dir := t.TempDir()
	pass := []byte("the backup's passphrase")
	seal := &backupfile.Protection{
		To:      crypt.Recipients{Passphrase: pass},
		Secrets: crypt.Secrets{Passphrase: func() ([]byte, error) { return pass, nil }},
		How:     "encrypted with the backup's passphrase",
	}
	path := safetyPathFor(dir, "-", "metadata", "0123456789ab", seal)
	if !strings.HasSuffix(path, ".tar.gpg") || filepath.Dir(path) != dir {
		t.Fatal(path)
	}
	const secret = "-----BEGIN EC PRIVATE KEY----- what DTR holds now"
	var checked string
	err := saveSafetyStreamed(progress.NewMode(discard{}, progress.Quiet), path, seal,
		func(w io.Writer) error { _, err := io.WriteString(w, secret); return err },
		func(err error) error { return err },
		func(in *backupfile.Input) error { b, err := readPass(in); checked = string(b); return err })
	if err != nil {
		t.Fatal(err)
	}
	if checked != secret {
		t.Fatalf("the check read %q", checked)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "PRIVATE KEY") || !crypt.IsEncrypted(raw) {
		t.Fatal("the safety backup is not sealed")
	}
	if err := withSafetyStreamed(path, nil, func(*backupfile.Input) error { return nil }); err == nil || !strings.Contains(err.Error(), "holds no secret") {
		t.Fatalf("opened without the secret: %v", err)
	}
	if err := withSafetyStreamed(path, seal, func(in *backupfile.Input) error {
		b, _ := readPass(in)
		if string(b) != secret {
			t.Errorf("read back %q", b)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Not sealed, with the same name but .tar.
	if p := safetyPathFor(dir, "-", "metadata", "0123456789ab", nil); !strings.HasSuffix(p, ".tar") {
		t.Fatal(p)
	}

	// A seal that cannot seal is refused before any file is made.
	bad := &backupfile.Protection{How: "not encrypted: the key that opened the backup cannot encrypt", Err: crypt.ErrUnusableKey}
	other := filepath.Join(dir, "other.tar.gpg")
	err = saveSafetyStreamed(progress.NewMode(discard{}, progress.Quiet), other, bad,
		func(w io.Writer) error { t.Error("wrote with a seal that cannot seal"); return nil },
		func(err error) error { return err }, func(*backupfile.Input) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "--safety-encryption none") {
		t.Fatalf("a seal that cannot seal: %v", err)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("%s: %v", other, err)
	}
}

// The targets say how their safety backup is protected, for the plan and
// the journal: nothing without a safety backup.
func TestSafetyProtection(t *testing.T) {
	seal := &backupfile.Protection{How: "encrypted to key 0x0123456789ABCDEF"}
	m := &Metadata{Safety: "/b/s.tar.gpg", SafetySeal: seal}
	if got := SafetyProtection(m); got != seal.How {
		t.Fatal(got)
	}
	m.SafetySeal = nil
	if got := SafetyProtection(m); got != "not encrypted" {
		t.Fatal(got)
	}
	m.Safety = ""
	if got := SafetyProtection(m); got != "" {
		t.Fatal(got)
	}
	im := newImages(false, "/b/s.tar.gpg", false)
	if got := SafetyProtection(im); got != "not encrypted" {
		t.Fatal(got)
	}
	im.SafetySeal = seal
	if got := SafetyProtection(im); got != seal.How {
		t.Fatal(got)
	}
	if got := SafetyProtection(&fake{safety: "/b/s.tar"}); got != "" {
		t.Fatal("a target that cannot say:", got)
	}
}

// A metadata safety backup sealed like the backup is checked after it is
// written, and read back for a rollback, as it is decrypted: with $TMPDIR
// missing, where no plaintext file can be made. One that does not verify
// is refused.
func TestSafetyBackupCheckedAsItIsDecrypted(t *testing.T) {
	dir := t.TempDir()
	good, bad := backuptest.Restorable(t), backuptest.UnrestorableBackups(t)[0].Data
	t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
	pass := []byte("the backup's passphrase")
	seal := &backupfile.Protection{
		To:      crypt.Recipients{Passphrase: pass},
		Secrets: crypt.Secrets{Passphrase: func() ([]byte, error) { return pass, nil }},
		How:     "encrypted with the backup's passphrase",
	}
	save := func(data []byte) (string, error) {
		path := safetyPathFor(dir, "-", "metadata", "0123456789ab", seal)
		return path, saveSafetyStreamed(progress.NewMode(discard{}, progress.Quiet), path, seal,
			func(w io.Writer) error { _, err := w.Write(data); return err },
			func(err error) error { return err },
			func(in *backupfile.Input) error {
				if in.Plain == nil {
					t.Error("the sealed safety backup is not read as a stream")
				}
				_, err := verifySafety(in)
				return err
			})
	}
	path, err := save(good)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := withSafetyStreamed(path, seal, func(in *backupfile.Input) error {
		rep, err := verifySafety(in)
		if err == nil {
			rows = rep.Rows
		}
		return err
	}); err != nil || rows == 0 {
		t.Fatalf("read back: %d rows, %v", rows, err)
	}
	if _, err := save(bad); err == nil || !strings.Contains(err.Error(), "did not verify, nothing was changed") {
		t.Fatalf("a safety backup that does not verify: %v", err)
	}
}

// readPass reads one whole pass of in.
func readPass(in *backupfile.Input) ([]byte, error) {
	rc, err := in.Pass()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// An image safety backup sealed like the backup is checked after it is
// written, and written back into the emptied volume by a rollback, as it
// is decrypted: with $TMPDIR missing from the check on, where no
// plaintext file can be made. The content written back is what the volume held, and the volume
// is checked against it after; a volume that reads back otherwise, and a
// safety backup that does not verify, are refused.
func TestImageSafetyBackupCheckedAndWrittenBackAsItIsDecrypted(t *testing.T) {
	dir := t.TempDir()
	volume := backuptest.VolumeWith(t, "layer one", "layer two")
	pass := []byte("the backup's passphrase")
	seal := &backupfile.Protection{
		To:      crypt.Recipients{Passphrase: pass},
		Secrets: crypt.Secrets{Passphrase: func() ([]byte, error) { return pass, nil }},
		How:     "encrypted with the backup's passphrase",
	}
	quiet := progress.NewMode(discard{}, progress.Quiet)
	save := func(write func(io.Writer) error) (string, error) {
		path := safetyPathFor(dir, "-", "images", "0123456789ab", seal)
		return path, saveSafetyStreamed(quiet, path, seal, write, func(err error) error { return err },
			func(in *backupfile.Input) error {
				if in.Plain == nil {
					t.Error("the sealed safety backup is not read as a stream")
				}
				return checkImageSafety(in)
			})
	}
	// Writing spools the manifest (no content) in $TMPDIR: it goes after.
	path, err := save(func(w io.Writer) error {
		defer t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
		_, err := imagearchive.Write(w, bytes.NewReader(volume), imagearchive.Info{
			Tool: "docker-dtr test", DTRVersion: "2.9.4", ReplicaID: "0123456789ab",
			Volume: "dtr-registry-0123456789ab", VolumeDriver: "local", Started: time.Now(),
		}, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The engine's part: what it is given to write is what the volume
	// then reads back as (or, for the refusal, that plus a file).
	writeBack := func(extra bool) (written []byte, err error) {
		err = withSafetyStreamed(path, seal, func(in *backupfile.Input) error {
			if in.Plain == nil {
				t.Error("the sealed safety backup is not read as a stream")
			}
			return writeSafetyBack(quiet, in, path, "dtr-registry-0123456789ab", func(content io.Reader, check func(io.Reader) error) error {
				var err error
				if written, err = io.ReadAll(content); err != nil {
					return err
				}
				return check(bytes.NewReader(readBack(t, written, extra)))
			})
		})
		return written, err
	}
	written, err := writeBack(false)
	if err != nil {
		t.Fatal(err)
	}
	want, got := volumeFiles(t, volume), volumeFiles(t, readBack(t, written, false))
	if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("written back %v, the volume held %v", got, want)
	}
	if _, err := writeBack(true); err == nil || !strings.Contains(err.Error(), "1 not in it") {
		t.Fatalf("a volume with a file the safety backup does not hold: %v", err)
	}

	// A safety backup that does not verify is refused before anything
	// changes.
	if _, err := save(func(w io.Writer) error { _, err := w.Write(volume); return err }); err == nil || !strings.Contains(err.Error(), "did not verify, nothing was changed") {
		t.Fatalf("a safety backup that does not verify: %v", err)
	}
}

// volumeFiles are the regular files of a volume's tar, name to content.
func volumeFiles(t *testing.T, b []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			c, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = string(c)
		}
	}
}

// readBack is how the archive API reads a volume back that was written
// content: under the mount point's directory, here with a file more when
// extra.
func readBack(t *testing.T, content []byte, extra bool) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	check := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	check(tw.WriteHeader(&tar.Header{Name: "storage/", Typeflag: tar.TypeDir, Mode: 0o755}))
	tr := tar.NewReader(bytes.NewReader(content))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		check(err)
		hdr.Name = "storage/" + hdr.Name
		check(tw.WriteHeader(hdr))
		_, err = io.Copy(tw, tr)
		check(err)
	}
	if extra {
		check(tw.WriteHeader(&tar.Header{Name: "storage/left-by-the-failed-restore", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
		_, err := tw.Write([]byte("x"))
		check(err)
	}
	check(tw.Close())
	return out.Bytes()
}
