package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// unitWatch is a D-Bus connection of its own, subscribed to systemd's
// PropertiesChanged signals for unit objects; DBus.Changes is fed from it.
//
// It does not use go-systemd's subscribers: SetPropertiesSubscriber and
// SetSubStateSubscriber store the channel without synchronising with
// go-systemd's signal dispatcher, a data race the race detector reports
// (seen with v22.7.0). A separate connection can also be re-established
// without disturbing jobs in flight on the main one.
type unitWatch struct {
	conn    *godbus.Conn
	signals chan *godbus.Signal
}

const (
	systemdObjectPath = "/org/freedesktop/systemd1"
	systemdUnitPaths  = "/org/freedesktop/systemd1/unit"
)

type signalConn struct {
	conn   *godbus.Conn
	viaBus bool
}

// dialSignalConn connects like go-systemd's NewWithContext: the system bus,
// or, for root when the bus is down, systemd's private socket (where there
// is no bus daemon to route by match rules).
func dialSignalConn(life context.Context) (signalConn, error) {
	auth := []godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}
	conn, err := godbus.SystemBusPrivate(godbus.WithContext(life))
	if err == nil {
		if err = conn.Auth(auth); err == nil {
			err = conn.Hello()
		}
		if err == nil {
			return signalConn{conn, true}, nil
		}
		conn.Close()
	}
	if os.Geteuid() != 0 {
		return signalConn{}, err
	}
	conn, err2 := godbus.Dial("unix:path=/run/systemd/private", godbus.WithContext(life))
	if err2 == nil {
		if err2 = conn.Auth(auth); err2 == nil {
			return signalConn{conn, false}, nil
		}
		conn.Close()
	}
	return signalConn{}, errors.Join(err, err2)
}

// subscribe opens a new unitWatch and makes it the current one.
func (d *DBus) subscribe(ctx context.Context) (*unitWatch, error) {
	sc, err := dialBounded(ctx, func() (signalConn, error) { return dialSignalConn(d.base) }, func(s signalConn) { s.conn.Close() })
	if err != nil {
		return nil, fmt.Errorf("subscribe to systemd unit changes: connect to D-Bus: %w", err)
	}
	cctx, cancel := boundCtx(ctx, dbusCallTimeout)
	defer cancel()
	if sc.viaBus {
		// The bus daemon forwards only signals a match rule asks for.
		err := sc.conn.AddMatchSignalContext(cctx,
			godbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
			godbus.WithMatchMember("PropertiesChanged"),
			godbus.WithMatchPathNamespace(systemdUnitPaths))
		if err != nil {
			sc.conn.Close()
			return nil, fmt.Errorf("subscribe to systemd unit changes: add match rule: %w", err)
		}
	}
	ch := make(chan *godbus.Signal, changesBuffer)
	sc.conn.Signal(ch)
	// systemd emits unit signals only while some client is subscribed.
	err = sc.conn.Object("org.freedesktop.systemd1", systemdObjectPath).
		CallWithContext(cctx, "org.freedesktop.systemd1.Manager.Subscribe", 0).Store()
	if err != nil {
		sc.conn.Close()
		return nil, fmt.Errorf("subscribe to systemd unit changes: %w", err)
	}
	w := &unitWatch{conn: sc.conn, signals: ch}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		sc.conn.Close()
		return nil, errors.New("systemd supervisor is closed")
	}
	d.sigs = w
	return w, nil
}

// watch forwards changes of our units until Close. When its connection
// closes (dbus-daemon restarted, systemd re-executed) it subscribes again
// and announces every unit, since changes meanwhile went unseen.
func (d *DBus) watch(w *unitWatch) {
	defer d.wg.Done()
	for {
		d.forward(w)
		w.conn.Close()
		for {
			if d.base.Err() != nil {
				return
			}
			var err error
			if w, err = d.subscribe(d.base); err == nil {
				break
			}
			d.log.Warn("cannot resubscribe to systemd unit changes; retrying", "err", err, "in", dbusRedialBackoff)
			select {
			case <-time.After(dbusRedialBackoff):
			case <-d.base.Done():
				return
			}
		}
		d.log.Info("resubscribed to systemd unit changes")
		// Signals may have been missed while unsubscribed.
		d.facts.forgetAll()
		d.announceAll()
	}
}

// forward returns when the connection is gone or the supervisor closes.
func (d *DBus) forward(w *unitWatch) {
	check := time.NewTicker(dbusConnCheckInterval)
	defer check.Stop()
	for {
		select {
		case sig, ok := <-w.signals:
			if !ok {
				if d.base.Err() == nil {
					d.log.Warn("systemd D-Bus signal connection closed; resubscribing")
				}
				return
			}
			if sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" {
				continue
			}
			if name, ok := unitFromPath(sig.Path); ok && strings.HasPrefix(name, UnitPrefix) {
				d.emit(name)
			}
		case <-check.C:
			if !w.conn.Connected() {
				d.log.Warn("systemd D-Bus signal connection lost; resubscribing")
				return
			}
		case <-d.base.Done():
			return
		}
	}
}

// unitFromPath turns /org/freedesktop/systemd1/unit/redis_2dappliance...
// back into the unit name (systemd escapes bytes outside [A-Za-z0-9] as
// _xx).
func unitFromPath(p godbus.ObjectPath) (string, bool) {
	esc, ok := strings.CutPrefix(string(p), systemdUnitPaths+"/")
	if !ok || esc == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(esc); i++ {
		if esc[i] == '_' && i+2 < len(esc) {
			if v, err := strconv.ParseUint(esc[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(esc[i])
	}
	return b.String(), true
}

func (d *DBus) announceAll() {
	ctx, cancel := context.WithTimeout(d.base, dbusCallTimeout)
	defer cancel()
	names, err := d.List(ctx)
	if err != nil {
		d.log.Warn("cannot list units after resubscribing", "err", err)
		return
	}
	for _, n := range names {
		d.emit(n)
	}
}
