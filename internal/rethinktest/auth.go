package rethinktest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

var errHandshake = errors.New("handshake failed")

// handshake runs the V1_0 handshake and SCRAM-SHA-256 exchange (RFC 5802/7677)
// for the single `admin` user, mirroring RethinkDB's error codes.
func (c *conn) handshake() error {
	var magic [4]byte
	if _, err := io.ReadFull(c.r, magic[:]); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(magic[:]) != uint32(p.VersionDummy_V1_0) {
		c.w.WriteString("ERROR: Received an unsupported protocol version. This port is for RethinkDB queries. Does your client driver version not match the server?\n\x00")
		c.w.Flush()
		return errHandshake
	}
	if err := c.writeNul(map[string]any{
		"success": true, "min_protocol_version": 0, "max_protocol_version": 0, "server_version": c.s.opts.Version,
	}); err != nil {
		return err
	}

	var first struct {
		ProtocolVersion      *int   `json:"protocol_version"`
		AuthenticationMethod string `json:"authentication_method"`
		Authentication       string `json:"authentication"`
	}
	if err := c.readNul(&first); err != nil {
		return c.authFail(10, "Invalid encoding")
	}
	if first.ProtocolVersion == nil || *first.ProtocolVersion != 0 {
		return c.authFail(10, "Unsupported protocol version, expected between 0 and 0.")
	}
	if first.AuthenticationMethod != "SCRAM-SHA-256" {
		return c.authFail(10, "Unknown authentication method")
	}
	msg := first.Authentication
	if !strings.HasPrefix(msg, "n,") {
		return c.authFail(15, "Channel binding is not supported")
	}
	i := strings.Index(msg[2:], ",")
	if i < 0 {
		return c.authFail(10, "Invalid encoding")
	}
	clientFirstBare := msg[2+i+1:]
	attrs, ok := scramAttrs(clientFirstBare)
	if !ok || attrs["n"] == "" || attrs["r"] == "" {
		return c.authFail(10, "Invalid encoding")
	}
	knownUser := attrs["n"] == "admin"
	salt := c.s.salt
	if !knownUser {
		// Like RethinkDB, do not reveal at this stage that the user is unknown.
		salt = make([]byte, 16)
		rand.Read(salt)
	}
	var sn [18]byte
	rand.Read(sn[:])
	nonce := attrs["r"] + base64.StdEncoding.EncodeToString(sn[:])
	serverFirst := "r=" + nonce + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=4096"
	if err := c.writeNul(map[string]any{"success": true, "authentication": serverFirst}); err != nil {
		return err
	}

	var final struct {
		Authentication string `json:"authentication"`
	}
	if err := c.readNul(&final); err != nil {
		return c.authFail(10, "Invalid encoding")
	}
	if !knownUser {
		return c.authFail(17, "Unknown user")
	}
	fattrs, ok := scramAttrs(final.Authentication)
	if !ok || fattrs["c"] != "biws" || fattrs["p"] == "" {
		return c.authFail(10, "Invalid encoding")
	}
	if fattrs["r"] != nonce {
		return c.authFail(20, "Other error")
	}
	withoutProof := final.Authentication[:strings.Index(final.Authentication, ",p=")]
	authMsg := clientFirstBare + "," + serverFirst + "," + withoutProof

	clientKey := hmacSHA(c.s.saltedPass, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	sig := hmacSHA(storedKey[:], authMsg)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	if !hmac.Equal([]byte(base64.StdEncoding.EncodeToString(proof)), []byte(fattrs["p"])) {
		return c.authFail(12, "Wrong password")
	}
	serverSig := hmacSHA(hmacSHA(c.s.saltedPass, "Server Key"), authMsg)
	return c.writeNul(map[string]any{"success": true, "authentication": "v=" + base64.StdEncoding.EncodeToString(serverSig)})
}

func hmacSHA(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramAttrs splits "k=v,k=v"; keys are single letters and may not repeat.
func scramAttrs(s string) (map[string]string, bool) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if len(part) < 2 || part[1] != '=' {
			return nil, false
		}
		if _, dup := out[part[:1]]; dup {
			return nil, false
		}
		out[part[:1]] = part[2:]
	}
	return out, true
}

func (c *conn) authFail(code int, msg string) error {
	c.writeNul(map[string]any{"success": false, "error": msg, "error_code": code})
	return errHandshake
}

func (c *conn) writeNul(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.w.Write(b)
	c.w.WriteByte(0)
	return c.w.Flush()
}

func (c *conn) readNul(v any) error {
	line, err := c.r.ReadBytes(0)
	if err != nil {
		return err
	}
	return json.Unmarshal(line[:len(line)-1], v)
}
