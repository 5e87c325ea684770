package plugin

import (
	"github.com/docker-dtr/docker-dtr/pkg/rethink"
	"github.com/spf13/pflag"
)

// rethinkOptions are the direct way in: a RethinkDB address and TLS material.
type rethinkOptions struct {
	rethink.Options
}

func (o *rethinkOptions) addFlags(flags *pflag.FlagSet) {
	flags.StringVar(&o.Addr, "rethinkdb-addr", "", "RethinkDB driver address (host:port)")
	flags.StringVar(&o.CAFile, "rethinkdb-ca", "", "CA certificate that signed the server's (DTR: /ca/rethink/cert.pem)")
	flags.StringVar(&o.CertFile, "rethinkdb-cert", "", "Client certificate (DTR: /ca/rethink-client/cert.pem)")
	flags.StringVar(&o.KeyFile, "rethinkdb-key", "", "Client key (DTR: /ca/rethink-client/key.pem)")
	flags.StringVar(&o.ServerName, "rethinkdb-server-name", "", "Name to verify in the server certificate (default: host of --rethinkdb-addr)")
	flags.StringVar(&o.User, "rethinkdb-user", "admin", "RethinkDB user")
	flags.StringVar(&o.PasswordFile, "rethinkdb-password-file", "", "File holding the RethinkDB password (never pass it as a flag)")
}
