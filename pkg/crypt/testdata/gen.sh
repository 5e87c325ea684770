#!/bin/sh
# Regenerates the gpg-made fixtures of this directory with the gpg on PATH
# (they were made with gpg 2.2.40). Test keys and passphrase only: nothing
# here protects anything. Run from this directory: sh gen.sh
# The ours-*.gpg files are written by Encrypt instead:
#   CRYPT_WRITE_FIXTURES=1 go test -run TestWriteFixtures ./pkg/crypt
set -eu
home=$(mktemp -d /tmp/gpgfx.XXXXXX)
trap 'GNUPGHOME=$home gpgconf --kill gpg-agent; rm -rf "$home"' EXIT
g() { gpg --homedir "$home" --batch --yes --no-tty --pinentry-mode loopback --trust-model always "$@"; }
fpr() { g --with-colons --list-keys "$1" | awk -F: '/^fpr/ {print $10; exit}'; }
export GNUPGHOME=$home
# Cheap key protection (gpg-agent calibrates ~65M iterations otherwise): the
# protected key is opened many times by the tests and the fuzzer.
echo 's2k-count 65536' >"$home/gpg-agent.conf"

# ed25519/cv25519, no passphrase; the same, protected; RSA-3072, no passphrase.
g --passphrase '' --quick-gen-key 'ECC Test <ecc@example.com>' future-default default never
g --passphrase-file passphrase.txt --quick-gen-key 'Protected Test <protected@example.com>' future-default default never
g --passphrase '' --quick-gen-key 'RSA Test <rsa@example.com>' rsa3072 cert,sign never
g --passphrase '' --quick-add-key "$(fpr rsa@example.com)" rsa3072 encr never
for k in ecc protected rsa; do
	g --passphrase-file passphrase.txt --export-secret-keys -a "$k@example.com" >"$k-sec.asc"
	g --export -a "$k@example.com" >"$k-pub.asc"
done

# A low S2K count keeps the tests and the fuzzer fast; gpg's default count is
# covered by the tests that run gpg.
sym="--passphrase-file passphrase.txt --s2k-count 65536"
g $sym -c -o sym-aes256.gpg plain.txt
g $sym -c --cipher-algo AES128 -o sym-aes128.gpg plain.txt
g $sym -c --compress-algo none -o sym-uncompressed.gpg plain.txt
g $sym -c -a -o sym-armored.asc plain.txt
g -e -r ecc@example.com -o to-ecc.gpg plain.txt
g -e -r rsa@example.com -o to-rsa.gpg plain.txt
g -e -a -r protected@example.com -o to-protected.asc plain.txt
g -e -r ecc@example.com -r rsa@example.com -o to-ecc-and-rsa.gpg plain.txt
g -s -e -u rsa@example.com -r ecc@example.com -o signed-to-ecc.gpg plain.txt
g -e -r "$(fpr ecc@example.com)" --throw-keyids -o to-hidden.gpg plain.txt
