package access

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/instance"
	"github.com/redis-appliance/redis-appliance/raftstate"
)

// plain is a stand-in keyring: sealed is the plaintext.
type plain struct{}

func (plain) Open(s []byte) ([]byte, error) { return s, nil }

func rotated(until time.Time) *raftstate.Database {
	return &raftstate.Database{Name: "db", Password: raftstate.Sealed("pw-new"), Access: &raftstate.Access{
		Agent: raftstate.Sealed("agent-new"), PreviousAgent: raftstate.Sealed("agent-old"),
		Replication: raftstate.Sealed("repl-new"), PreviousReplication: raftstate.Sealed("repl-old"),
		PreviousPassword: raftstate.Sealed("pw-old"), PreviousUntil: until,
		Users: []raftstate.User{{Name: "app", Role: raftstate.UserRead, Keys: []string{"a:*"}, Password: raftstate.Sealed("app-new"),
			Previous: raftstate.Sealed("app-old"), PreviousUntil: until}},
	}}
}

func TestUsers_PreviousSecretsOnlyWithinTheGraceAndTheAgentFirst(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		name  string
		until time.Time
		old   bool
	}{{"within the grace", now.Add(time.Hour), true}, {"after it", now.Add(-time.Second), false}} {
		us, err := Users(plain{}, rotated(c.until), now)
		if err != nil {
			t.Fatal(err)
		}
		previous := map[string]string{AgentUser: "agent-old", ReplicationUser: "repl-old", "default": "pw-old", "app": "app-old"}
		names := []string{}
		for _, u := range us {
			names = append(names, u.Name)
			if got := slices.Contains(u.Args, Digest(previous[u.Name])); got != c.old {
				t.Errorf("%s: %s accepts its previous secret = %v, want %v", c.name, u.Name, got, c.old)
			}
			if strings.Contains(u.ConfigLine(), "-new") || strings.Contains(u.ConfigLine(), "-old") {
				t.Errorf("a secret in the clear: %s", u.ConfigLine())
			}
		}
		if want := []string{AgentUser, ReplicationUser, "default", "app"}; !slices.Equal(names, want) {
			t.Errorf("users %v, want %v (the agent's first)", names, want)
		}
	}
}

func TestAgentCredentials_TriedInOrder(t *testing.T) {
	got, err := AgentCredentials(plain{}, rotated(time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	want := []instance.Credential{{User: AgentUser, Password: "agent-new"}, {User: AgentUser, Password: "agent-old"},
		{User: "default", Password: "pw-new"}, {User: "default", Password: "pw-old"}}
	if !slices.Equal(got, want) {
		t.Errorf("credentials %v, want %v", got, want)
	}
	legacy, _ := AgentCredentials(plain{}, &raftstate.Database{Name: "db", Password: raftstate.Sealed("pw")})
	if !slices.Equal(legacy, []instance.Credential{{User: "default", Password: "pw"}}) {
		t.Errorf("a database from before access control: %v", legacy)
	}
	if r, _ := ReplicationCredential(plain{}, &raftstate.Database{Name: "db", Password: raftstate.Sealed("pw")}); r.User != "" || r.Password != "pw" {
		t.Errorf("replication of a database from before access control: %v", r)
	}
}

func TestRules_EveryRoleEndsWithTheDenialsAndReadOnlyRemovesWrites(t *testing.T) {
	for _, r := range raftstate.UserRoles {
		rules := Rules(r, true)
		i := slices.Index(rules, Denied[0])
		if i < 0 || !slices.Equal(rules[i:i+len(Denied)], Denied) || rules[len(rules)-1] != "-@write" {
			t.Errorf("%s: %v", r, rules)
		}
		for _, after := range rules[i+len(Denied):] {
			if after != "-@write" && !slices.Contains(Restored, after) {
				t.Errorf("%s gives back %s after the denials", r, after)
			}
		}
	}
}
