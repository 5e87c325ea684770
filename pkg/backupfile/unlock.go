package backupfile

import (
	"fmt"
	"io"
	"os"

	"github.com/docker-dtr/docker-dtr/pkg/crypt"
)

// Unlock finds how the backup at path is encrypted and checks that o's
// secrets open it, without decrypting its content: the Protection that
// reads it later (a restore's --undo of an encrypted safety backup) without
// asking again. It is nil for a backup in clear.
func Unlock(path string, o OpenOptions) (*Protection, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open backup: %w", err)
	}
	defer f.Close()
	enc, err := Encrypted(f)
	if err != nil || !enc {
		return nil, err
	}
	name := DisplayName(path)
	_, secrets, err := secretsFor(f, name, o)
	if err != nil {
		return nil, err
	}
	_, opened, err := crypt.DecryptOpened(io.NewSectionReader(f, 0, 1<<62), secrets)
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt %s: %w", name, err)
	}
	return protection(opened, secrets)
}
