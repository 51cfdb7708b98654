package source_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis-appliance/redis-appliance/appliance/api"
	"github.com/redis-appliance/redis-appliance/tui/source"
)

// slowAPI is a fake agent that never answers before its context ends.
type slowAPI struct{ source.API }

func (slowAPI) ClusterStatus(ctx context.Context) (api.ClusterStatus, error) {
	<-ctx.Done()
	return api.ClusterStatus{}, ctx.Err()
}
func (slowAPI) Nodes(ctx context.Context) ([]api.Node, error) { <-ctx.Done(); return nil, ctx.Err() }
func (slowAPI) ListDatabases(ctx context.Context) ([]api.Database, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (slowAPI) Events(ctx context.Context) ([]api.Event, error) { <-ctx.Done(); return nil, ctx.Err() }
func (slowAPI) ValidateDatabase(ctx context.Context, _ api.CreateDatabaseRequest) (api.CreatePlan, error) {
	<-ctx.Done()
	return api.CreatePlan{}, ctx.Err()
}

// TestRefreshIsBounded: an agent that hangs costs one timeout, and the
// error says what happened in words.
func TestRefreshIsBounded(t *testing.T) {
	s := source.New(context.Background(), slowAPI{}, 50*time.Millisecond)
	start := time.Now()
	msg := s.Refresh()().(source.SnapshotMsg)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("refresh took %v", d)
	}
	err := msg.Err()
	if err == nil || !strings.Contains(err.Error(), "the agent did not answer within 50ms") {
		t.Fatalf("err = %v", err)
	}
	// The three calls failed alike: said once.
	if strings.Count(err.Error(), "did not answer") != 1 {
		t.Fatalf("repeated: %v", err)
	}
	// The events were asked for in the same bound, and say it as well.
	if msg.EventsErr == nil || !strings.Contains(msg.EventsErr.Error(), "the agent did not answer within 50ms") {
		t.Fatalf("events err = %v", msg.EventsErr)
	}
}

// eventsAPI is a fake agent that answers every read, and counts the reads
// of the events.
type eventsAPI struct {
	source.API
	mu    sync.Mutex
	reads int
	err   error
}

func (*eventsAPI) ClusterStatus(context.Context) (api.ClusterStatus, error) {
	return api.ClusterStatus{Node: "n1"}, nil
}
func (*eventsAPI) Nodes(context.Context) ([]api.Node, error) { return []api.Node{{Name: "n1"}}, nil }
func (*eventsAPI) ListDatabases(context.Context) ([]api.Database, error) {
	return []api.Database{{Name: "sessions"}}, nil
}
func (a *eventsAPI) Events(context.Context) ([]api.Event, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reads++
	if a.err != nil {
		return nil, a.err
	}
	return []api.Event{{Kind: "detected", Database: "sessions"}, {Kind: "promoted", Database: "sessions", Node: "n2"}}, nil
}

// TestRefreshReadsTheEvents: every refresh reads the events, as they are,
// with the rest; a failure to read them is the events' own and leaves the
// cluster's state live.
func TestRefreshReadsTheEvents(t *testing.T) {
	a := &eventsAPI{}
	s := source.New(context.Background(), a, time.Second)
	for i := 1; i <= 2; i++ {
		msg := s.Refresh()().(source.SnapshotMsg)
		if a.reads != i || len(msg.Events) != 2 || msg.Events[1].Kind != "promoted" || msg.EventsErr != nil {
			t.Fatalf("refresh %d: %d reads, events %+v, err %v", i, a.reads, msg.Events, msg.EventsErr)
		}
	}
	a.err = &api.Error{Status: 404, Message: "no route GET /v1/events"}
	msg := s.Refresh()().(source.SnapshotMsg)
	if msg.EventsErr == nil || msg.Events != nil || msg.Err() != nil || len(msg.Databases) != 1 {
		t.Fatalf("events failing: events %v, err %v, snapshot err %v", msg.Events, msg.EventsErr, msg.Err())
	}
}

func TestActionNames(t *testing.T) {
	for a, want := range map[source.Action][2]string{
		source.Create: {"create", "creating"}, source.Restart: {"restart", "restarting"},
		source.Delete: {"delete", "deleting"}, source.Drain: {"drain", "draining"},
		source.Failover: {"failover", "failing over"}, source.Promote: {"promote", "promoting"},
		source.Unlink: {"unlink", "unlinking"},
	} {
		if a.String() != want[0] || a.Ongoing() != want[1] {
			t.Errorf("%d: %s %s", a, a.String(), a.Ongoing())
		}
	}
	if e := (source.SnapshotMsg{NodesErr: errors.New("x")}).Err(); e == nil {
		t.Fatal("nodes error lost")
	}
}

// failoverAPI is a fake agent that records the failover asked of it.
type failoverAPI struct {
	source.API
	got api.FailoverRequest
}

func (f *failoverAPI) FailoverDatabase(_ context.Context, name string, req api.FailoverRequest) (api.FailoverResult, error) {
	f.got = req
	return api.FailoverResult{Database: api.Database{Name: name, Epoch: 4}, From: "n2", To: "n3", WritePauseMs: 9.8}, nil
}

// TestFailoverCarriesTheTarget: the node picked reaches the agent, and
// its answer (the nodes, the write pause, the database) comes back whole.
func TestFailoverCarriesTheTarget(t *testing.T) {
	f := &failoverAPI{}
	msg := source.New(context.Background(), f, time.Second).Failover("sessions", "n3")().(source.ActionMsg)
	if f.got.To != "n3" || msg.Action != source.Failover || msg.Target != "sessions" || msg.Err != nil {
		t.Fatalf("asked %+v, got %+v", f.got, msg)
	}
	if msg.Failover.WritePauseMs != 9.8 || msg.Failover.To != "n3" || msg.Database.Epoch != 4 {
		t.Fatalf("result lost: %+v", msg)
	}
}

// TestValidateIsBounded: a validation the agent does not answer costs the
// Source's timeout, not the two minutes of an action, and is not taken
// for a refusal of the request.
func TestValidateIsBounded(t *testing.T) {
	s := source.New(context.Background(), slowAPI{}, 50*time.Millisecond)
	req := api.CreateDatabaseRequest{Name: "cache-2", Memory: "256mb"}
	start := time.Now()
	msg := s.Validate(req)().(source.ValidationMsg)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("validate took %v", d)
	}
	if msg.Request != req || msg.Err == nil || !strings.Contains(msg.Err.Error(), "the agent did not answer within 50ms") {
		t.Fatalf("got %+v", msg)
	}
	if source.Refused(msg.Err) {
		t.Fatal("no answer was taken for a refusal")
	}
}

// TestRefused: only the agent's answers about the request itself are
// refusals; a leader too old to validate (405), no leader (503) or no
// answer say nothing about it.
func TestRefused(t *testing.T) {
	for err, want := range map[error]bool{
		&api.Error{Status: 400, Message: "name must start with a letter"}:           true,
		&api.Error{Status: 404, Message: `source database "x" does not exist`}:      true,
		&api.Error{Status: 409, Message: `database "cache" already exists`}:         true,
		&api.Error{Status: 422, Message: "node n2 has 1.3 GiB free"}:                true,
		&api.Error{Status: 405, Message: "agent answered 405 Method Not Allowed"}:   false,
		&api.Error{Status: 503, Message: "no leader: the cluster has no leader"}:    false,
		fmt.Errorf("validate: %w", &api.Error{Status: 409, Message: "wrapped"}):     true,
		errors.New("talk to agent on /run/redis-appliance/api.sock: reset by peer"): false,
		nil: false,
	} {
		if got := source.Refused(err); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
}
