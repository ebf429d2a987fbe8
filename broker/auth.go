package broker

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ferrylab/ferry/proto"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"
)

// ErrAuthConfig is wrapped by every invalid user or TLS setting.
var ErrAuthConfig = errors.New("broker: invalid auth config")

// Role is what a user may do on the broker. The permissions are fixed by
// ferry's subjects and the user's login (its name, or its public nkey), so
// a fleet is configured by naming roles, not subjects. docs/auth.md states
// what each role's credential can do if stolen; TestStolenCredentials
// proves it sentence by sentence.
type Role string

// Roles accepted in Options.Users. <login> is the user's name or nkey.
const (
	// RoleWorker reads only the batches sent to workers of its own login
	// (ferry.work.<login>.>), its share of the any-worker queue
	// (ferry.work.any in queue group ferry-workers), the micro control
	// subjects of the ferry-worker service ($SRV.*) and its own inbox
	// (_INBOX.<login>.>). It publishes only replies to its own batches
	// (_INBOX.*.to.<login>.>) and, for 15 minutes after each message it
	// receives, any replies to that message: its answers to discovery, and
	// the acks of the JetStream batches delivered to it. It cannot send
	// work, read other clients' replies or ack other workers' batches. For
	// dispatch=jetstream it may also list the consumers of FERRY_BATCHES
	// (one per job) and hear when one is created, pull from them and
	// publish results (ferry.result.>); a coordinator drops a result
	// without its batch's token.
	RoleWorker Role = "worker"
	// RoleCoordinator may publish work (ferry.work.>) and $SRV requests
	// (discovery) and read only its own inbox (_INBOX.<login>.>). It cannot
	// subscribe to work subjects, so it cannot pose as a worker, nor publish
	// to anyone's inbox. For dispatch=jetstream it may also publish batches
	// (ferry.batch.>) and manage ferry's two streams and their consumers, no
	// other stream. For the transport floor it may send to and serve its
	// own echo subjects (ferry.echo.<login>.>, none of another login's) and
	// answer, once each within a minute, what it receives: the coordinator's
	// echo process logs in with its credentials.
	RoleCoordinator Role = "coordinator"
	// RoleAdmin has no restrictions: for operators' tools (nats micro ls).
	RoleAdmin Role = "admin"
)

// Roles lists the roles.
func Roles() []Role { return []Role{RoleWorker, RoleCoordinator, RoleAdmin} }

// WorkerReplyWindow is how long a worker may take to answer a request it
// received. It is far above any batch deadline ferry derives (30 s at most),
// so only a batch_timeout longer than this needs it raised.
const WorkerReplyWindow = 15 * time.Minute

// User is one identity the broker accepts: a name with a password, or a
// public nkey whose seed the client holds. Its String form never includes
// the password.
type User struct {
	Name     string `yaml:"user" json:"user"`         // user name (password auth)
	Password string `yaml:"password" json:"password"` // plain text or a bcrypt hash ("$2a$..."), never logged
	NKey     string `yaml:"nkey" json:"nkey"`         // public user nkey ("U..."), instead of Name and Password
	Role     Role   `yaml:"role" json:"role"`         // worker, coordinator or admin
}

// String names the user and role, never the password.
func (u User) String() string {
	if u.NKey != "" {
		return fmt.Sprintf("nkey %s (%s)", u.NKey, u.Role)
	}
	return fmt.Sprintf("%s (%s)", u.Name, u.Role)
}

// GoString is String, so %#v does not print the password either.
func (u User) GoString() string { return u.String() }

// login is the user's name in ferry's subjects: its name, or its nkey.
func (u User) login() string {
	if u.NKey != "" {
		return u.NKey
	}
	return u.Name
}

func (u User) validate() error {
	if !slices.Contains(Roles(), u.Role) {
		return fmt.Errorf("%w: %s: role %q is not one of %v", ErrAuthConfig, u, u.Role, Roles())
	}
	if u.Role != RoleAdmin && u.Name != "" && !proto.ValidLogin(u.Name) {
		return fmt.Errorf("%w: user %q: a %s's name names its subjects: use letters, digits, '-' and '_' (at most 64)", ErrAuthConfig, u.Name, u.Role)
	}
	switch {
	case u.NKey != "" && (u.Name != "" || u.Password != ""):
		return fmt.Errorf("%w: %s: give either nkey or user and password, not both", ErrAuthConfig, u)
	case u.NKey != "":
		if !nkeys.IsValidPublicUserKey(u.NKey) {
			return fmt.Errorf("%w: nkey %q is not a public user nkey (it starts with U; the seed, starting with SU, stays with the client)", ErrAuthConfig, u.NKey)
		}
	case u.Name == "":
		return fmt.Errorf("%w: a user needs a name and password, or an nkey", ErrAuthConfig)
	case u.Password == "":
		return fmt.Errorf("%w: user %q has no password", ErrAuthConfig, u.Name)
	}
	return nil
}

// permissions are the user's subject permissions; nil means unrestricted.
func (u User) permissions() *server.Permissions {
	login := u.login()
	switch u.Role {
	case RoleWorker:
		svc := "$SRV.*." + proto.ServiceName
		consumers := proto.BatchStream + ".*" // every job's consumer: a worker serves them all
		return &server.Permissions{
			// Acks ($JS.ACK) are not here: a worker sends them as replies to
			// the batches delivered to it, which the Response permission
			// admits, so it cannot ack or terminate another worker's.
			// Listing the batch stream's consumers is how a worker finds the
			// jobs.
			Publish: &server.SubjectPermission{Allow: []string{
				proto.ReplyInbox(inboxPrefix+"*", login) + ".>",
				"$JS.API.STREAM.INFO." + proto.BatchStream, "$JS.API.CONSUMER.NAMES." + proto.BatchStream,
				"$JS.API.CONSUMER.INFO." + consumers, "$JS.API.CONSUMER.MSG.NEXT." + consumers,
				proto.ResultSubjectPrefix + ".>",
			}},
			Subscribe: &server.SubjectPermission{Allow: []string{
				proto.WorkSubject(login) + ".>",
				proto.WorkQueueSubject + " " + proto.WorkQueueGroup, // only in the queue group: a share, not a copy
				"$SRV.*", svc, svc + ".*",
				proto.InboxPrefix(login) + ".>",
				proto.JobCreatedAdvisory,
			}},
			// Any number of replies to a message, within the window: a
			// JetStream batch is acked after several in-progress notes.
			Response: &server.ResponsePermission{MaxMsgs: -1, Expires: WorkerReplyWindow},
		}
	case RoleCoordinator:
		allow := []string{proto.WorkSubjectPrefix + ".>", "$SRV.>", proto.BatchSubjectPrefix + ".>",
			// It reads results through its own consumers; it never pulls batches.
			"$JS.API.CONSUMER.MSG.NEXT." + proto.ResultStream + ".>", "$JS.API.DIRECT.GET." + proto.ResultStream + ".>"}
		for _, stream := range []string{proto.BatchStream, proto.ResultStream} {
			allow = append(allow, "$JS.API.STREAM.*."+stream, "$JS.API.STREAM.MSG.GET."+stream, "$JS.API.CONSUMER.*."+stream+".>")
		}
		echo := proto.CoordinatorEchoSubject(login) + ".>"
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: append(allow, echo)},
			Subscribe: &server.SubjectPermission{Allow: []string{proto.InboxPrefix(login) + ".>", echo}},
			// The echo's answers: only to the reply subject of a message it
			// was delivered, which only its own login sends it.
			Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}
	}
	return nil
}

// inboxPrefix is nats.go's reply inbox prefix.
const inboxPrefix = "_INBOX."

// applyUsers turns authentication on in so when users is not empty.
func applyUsers(so *server.Options, users []User) error {
	names := map[string]bool{}
	for _, u := range users {
		if err := u.validate(); err != nil {
			return err
		}
		key := u.Name + "\x00" + u.NKey
		if names[key] {
			return fmt.Errorf("%w: %s is listed twice", ErrAuthConfig, u)
		}
		names[key] = true
		if u.NKey != "" {
			so.Nkeys = append(so.Nkeys, &server.NkeyUser{Nkey: u.NKey, Permissions: u.permissions()})
			continue
		}
		so.Users = append(so.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: u.permissions()})
	}
	return nil
}

// TLS configures TLS for client connections. The zero value is plain TCP.
type TLS struct {
	Cert string // server certificate chain (PEM file); with Key, every client must use TLS
	Key  string // server private key (PEM file)
	// ClientCA, when set, turns on mutual TLS: a client must present a
	// certificate signed by this CA (PEM file) or it is refused.
	ClientCA string
}

// Enabled reports whether t turns TLS on.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

func applyTLS(so *server.Options, t TLS) error {
	if !t.Enabled() {
		if t.ClientCA != "" {
			return fmt.Errorf("%w: a client CA needs the server's own certificate and key too", ErrAuthConfig)
		}
		return nil
	}
	if t.Cert == "" || t.Key == "" {
		return fmt.Errorf("%w: TLS needs both a certificate and a key", ErrAuthConfig)
	}
	verify := t.ClientCA != ""
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.ClientCA, Verify: verify})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrAuthConfig, err)
	}
	so.TLS, so.TLSConfig, so.TLSVerify, so.TLSTimeout = true, cfg, verify, 2
	return nil
}

// applyRouteAuth sets the cluster's route login and TLS (see Cluster).
func applyRouteAuth(so *server.Options, c Cluster, t TLS) error {
	if (c.User == "") != (c.Password == "") {
		return fmt.Errorf("%w: route auth needs both a user and a password", ErrAuthConfig)
	}
	if c.User != "" {
		so.Cluster.Username, so.Cluster.Password = c.User, c.Password
		for _, r := range so.Routes {
			if r.User == nil {
				r.User = url.UserPassword(c.User, c.Password)
			}
		}
	}
	if !t.Enabled() {
		return nil
	}
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: t.Cert, KeyFile: t.Key, CaFile: t.ClientCA, Verify: true})
	if err != nil {
		return fmt.Errorf("%w: route TLS: %v", ErrAuthConfig, err)
	}
	// A node is server and client of its routes: it verifies peers both ways
	// with the same CA, as nats-server does for a cluster's tls block.
	cfg.ClientAuth, cfg.RootCAs = tls.RequireAndVerifyClientCert, cfg.ClientCAs
	so.Cluster.TLSConfig, so.Cluster.TLSTimeout = cfg, 2
	return nil
}

// usersFile is the auth file's shape.
type usersFile struct {
	Users []User `yaml:"users"`
}

// LoadUsers reads a users file (YAML, or JSON, which is YAML too):
//
//	users:
//	  - {user: worker, password: "$2a$11$...", role: worker}
//	  - {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4, role: coordinator}
//
// Unknown fields are errors, so a misspelt key cannot silently weaken auth.
// Errors name the file and never quote a password.
func LoadUsers(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAuthConfig, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f usersFile
	if err := dec.Decode(&f); err != nil {
		// yaml errors name keys, types and lines, not values; they span
		// lines, and a user gets one.
		return nil, fmt.Errorf("%w: %s: %s", ErrAuthConfig, path, strings.Join(strings.Fields(err.Error()), " "))
	}
	if len(f.Users) == 0 {
		return nil, fmt.Errorf("%w: %s lists no users", ErrAuthConfig, path)
	}
	for i, u := range f.Users {
		if err := u.validate(); err != nil {
			return nil, fmt.Errorf("%s: user %d: %w", path, i+1, err)
		}
	}
	return f.Users, nil
}
