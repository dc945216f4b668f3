package watermill

// Rill's own Watermill scenarios. They go through Watermill redisstream's public API only (plus go-redis for the
// few server-side facts Watermill does not expose, such as XPENDING), because the product promise is that an
// unchanged Watermill application works against Rill.
//
// Environment (set by compat/run):
//   RILL_ADDR      host:port of a running Rill (shared by all scenarios except the restart one)
//   RILL_PROTOCOL  2 or 3: the RESP version go-redis negotiates (go-redis `Protocol`)
//   RILL_BIN       the rill binary; the restart scenario starts, SIGKILLs and restarts its own server with it

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

func serverAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("RILL_ADDR")
	if addr == "" {
		t.Fatal("RILL_ADDR is not set: run these scenarios through compat/run")
	}
	return addr
}

func protocol(t *testing.T) int {
	t.Helper()
	p, err := strconv.Atoi(os.Getenv("RILL_PROTOCOL"))
	if err != nil || (p != 2 && p != 3) {
		t.Fatalf("RILL_PROTOCOL must be 2 or 3, got %q", os.Getenv("RILL_PROTOCOL"))
	}
	return p
}

// newClient gives each subscriber its own client, so that closing one (how Watermill frees a read stuck in
// BLOCK 0, and how we "kill" a subscriber) does not affect the others.
func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func uniqueTopic(name string) string {
	return fmt.Sprintf("compat-%s-%s", name, watermill.NewShortUUID())
}

func newPublisher(t *testing.T, c redis.UniversalClient) *redisstream.Publisher {
	t.Helper()
	p, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: c}, nil)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	return p
}

func newSubscriber(t *testing.T, cfg redisstream.SubscriberConfig) *redisstream.Subscriber {
	t.Helper()
	s, err := redisstream.NewSubscriber(cfg, nil)
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// publishN publishes messages whose payload is their sequence number and returns their UUIDs in order.
func publishN(t *testing.T, p *redisstream.Publisher, topic string, n int) []string {
	t.Helper()
	uuids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		m := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
		if err := p.Publish(topic, m); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		uuids = append(uuids, m.UUID)
	}
	return uuids
}

// received records who got which message, safe for several subscriber goroutines.
type received struct {
	mu     sync.Mutex
	counts map[string]int
	order  map[string][]string // subscriber → UUIDs in arrival order
	total  int
}

func newReceived() *received {
	return &received{counts: map[string]int{}, order: map[string][]string{}}
}

func (r *received) add(sub, uuid string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[uuid]++
	r.order[sub] = append(r.order[sub], uuid)
	r.total++
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

// consume acks everything it receives on ch until ctx ends.
func consume(ctx context.Context, sub string, ch <-chan *message.Message, r *received) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			r.add(sub, m.UUID)
			m.Ack()
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func pendingCount(t *testing.T, c *redis.Client, topic, group string) int64 {
	t.Helper()
	p, err := c.XPending(context.Background(), topic, group).Result()
	if err != nil {
		t.Fatalf("XPENDING %s %s: %v", topic, group, err)
	}
	return p.Count
}

// Three subscribers in one consumer group share the stream: every message is handled exactly once.
func TestConsumerGroupSharing(t *testing.T) {
	addr := serverAddr(t)
	topic := uniqueTopic("sharing")
	const n = 300
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	r := newReceived()
	for i := 0; i < 3; i++ {
		s := newSubscriber(t, redisstream.SubscriberConfig{Client: newClient(t, addr), ConsumerGroup: "workers",
			Consumer: fmt.Sprintf("worker-%d", i)})
		ch, err := s.Subscribe(ctx, topic)
		if err != nil {
			t.Fatalf("subscribe %d: %v", i, err)
		}
		go consume(ctx, fmt.Sprintf("worker-%d", i), ch, r)
	}
	admin := newClient(t, addr)
	uuids := publishN(t, newPublisher(t, admin), topic, n)

	if !waitFor(30*time.Second, func() bool { return r.distinct() == n }) {
		t.Fatalf("got %d of %d messages within 30 s", r.distinct(), n)
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range uuids {
		if r.counts[u] != 1 {
			t.Errorf("message %s handled %d times, want exactly once", u, r.counts[u])
		}
	}
	if r.total != n {
		t.Errorf("handled %d messages in total, want %d", r.total, n)
	}
	if busy := len(r.order); busy < 2 {
		t.Errorf("only %d of 3 subscribers got work; the group did not share the stream", busy)
	}
	if !waitFor(5*time.Second, func() bool { return pendingCount(t, admin, topic, "workers") == 0 }) {
		t.Errorf("XPENDING still counts %d entries after every message was acked", pendingCount(t, admin, topic, "workers"))
	}
}

// Two consumer groups each receive every message, in publish order.
func TestTwoGroupsEachReceiveEverything(t *testing.T) {
	addr := serverAddr(t)
	topic := uniqueTopic("twogroups")
	const n = 100
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	groups := []string{"billing", "audit"}
	results := map[string]*received{}
	for _, g := range groups {
		results[g] = newReceived()
		s := newSubscriber(t, redisstream.SubscriberConfig{Client: newClient(t, addr), ConsumerGroup: g})
		ch, err := s.Subscribe(ctx, topic)
		if err != nil {
			t.Fatalf("subscribe %s: %v", g, err)
		}
		go consume(ctx, g, ch, results[g])
	}
	uuids := publishN(t, newPublisher(t, newClient(t, addr)), topic, n)
	for _, g := range groups {
		r := results[g]
		if !waitFor(30*time.Second, func() bool { return r.distinct() == n }) {
			t.Fatalf("group %s got %d of %d messages", g, r.distinct(), n)
		}
		r.mu.Lock()
		got := append([]string(nil), r.order[g]...)
		r.mu.Unlock()
		for i, u := range uuids {
			if i >= len(got) || got[i] != u {
				t.Errorf("group %s: message #%d out of order or missing", g, i)
				break
			}
		}
	}
}

// A Nack makes Watermill redeliver in-process; the entry stays pending on the server until the final Ack.
func TestNackRedelivery(t *testing.T) {
	addr := serverAddr(t)
	topic := uniqueTopic("nack")
	const n = 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := newClient(t, addr)

	s := newSubscriber(t, redisstream.SubscriberConfig{Client: newClient(t, addr), ConsumerGroup: "nackers",
		NackResendSleep: 10 * time.Millisecond})
	ch, err := s.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	uuids := publishN(t, newPublisher(t, admin), topic, n)

	seen := map[string]int{}
	deadline := time.After(30 * time.Second)
	for done := 0; done < n; {
		select {
		case m := <-ch:
			seen[m.UUID]++
			if seen[m.UUID] == 1 {
				// While nacked the entry must still be in the server's PEL.
				if c := pendingCount(t, admin, topic, "nackers"); c < 1 {
					t.Errorf("XPENDING count %d while message %s is nacked, want >= 1", c, m.UUID)
				}
				m.Nack()
			} else {
				m.Ack()
				done++
			}
		case <-deadline:
			t.Fatalf("only %d of %d messages redelivered after Nack within 30 s", done, n)
		}
	}
	for _, u := range uuids {
		if seen[u] != 2 {
			t.Errorf("message %s delivered %d times, want 2 (Nack then Ack)", u, seen[u])
		}
	}
	if !waitFor(5*time.Second, func() bool { return pendingCount(t, admin, topic, "nackers") == 0 }) {
		t.Errorf("XPENDING still counts %d after all acks", pendingCount(t, admin, topic, "nackers"))
	}
}

// A subscriber dies holding an unacked message; another subscriber of the group claims it after MaxIdleTime.
func TestKilledSubscriberEntriesAreClaimed(t *testing.T) {
	addr := serverAddr(t)
	topic := uniqueTopic("claim")
	const n = 10
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := newClient(t, addr)

	victimClient := newClient(t, addr)
	victim := newSubscriber(t, redisstream.SubscriberConfig{Client: victimClient, ConsumerGroup: "claimers",
		Consumer: "victim", MaxIdleTime: time.Hour})
	victimCh, err := victim.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe victim: %v", err)
	}
	uuids := publishN(t, newPublisher(t, admin), topic, n)

	var held *message.Message
	select {
	case held = <-victimCh:
	case <-time.After(10 * time.Second):
		t.Fatal("victim received nothing within 10 s")
	}
	// "Kill" it mid-message: its connection goes away and it never acks.
	_ = victimClient.Close()
	if held.UUID != uuids[0] {
		t.Errorf("victim's first message is %s, want the first published %s", held.UUID, uuids[0])
	}

	r := newReceived()
	rescuer := newSubscriber(t, redisstream.SubscriberConfig{Client: newClient(t, addr), ConsumerGroup: "claimers",
		Consumer: "rescuer", MaxIdleTime: 500 * time.Millisecond, ClaimInterval: 200 * time.Millisecond})
	rescuerCh, err := rescuer.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe rescuer: %v", err)
	}
	go consume(ctx, "rescuer", rescuerCh, r)

	start := time.Now()
	if !waitFor(20*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.counts[held.UUID] >= 1
	}) {
		t.Fatalf("the message held by the killed subscriber was not claimed within 20 s")
	}
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Errorf("claimed after %v, before MaxIdleTime (500 ms) had passed", elapsed)
	}
	if !waitFor(20*time.Second, func() bool { return r.distinct() >= n-1 }) {
		t.Fatalf("rescuer got %d distinct messages, want at least %d", r.distinct(), n-1)
	}
	if !waitFor(5*time.Second, func() bool { return pendingCount(t, admin, topic, "claimers") == 0 }) {
		t.Errorf("XPENDING still counts %d after the rescuer acked everything", pendingCount(t, admin, topic, "claimers"))
	}
}

// Without a consumer group every subscriber gets every message (XREAD fan-out), from "$" and from "0".
func TestFanOutWithoutGroup(t *testing.T) {
	addr := serverAddr(t)
	topic := uniqueTopic("fanout")
	const n = 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	subs := []string{"a", "b", "c"}
	results := map[string]*received{}
	for _, name := range subs {
		results[name] = newReceived()
		s := newSubscriber(t, redisstream.SubscriberConfig{Client: newClient(t, addr)})
		ch, err := s.Subscribe(ctx, topic)
		if err != nil {
			t.Fatalf("subscribe %s: %v", name, err)
		}
		go consume(ctx, name, ch, results[name])
	}
	// "$" means "from the moment the first XREAD is served": give the three reads time to block.
	time.Sleep(500 * time.Millisecond)
	uuids := publishN(t, newPublisher(t, newClient(t, addr)), topic, n)

	// A late subscriber replaying from the start must see the same messages.
	results["late"] = newReceived()
	late := newSubscriber(t, redisstream.SubscriberConfig{Client: newClient(t, addr), FanOutOldestId: "0"})
	lateCh, err := late.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe late: %v", err)
	}
	go consume(ctx, "late", lateCh, results["late"])

	for _, name := range append(subs, "late") {
		r := results[name]
		if !waitFor(30*time.Second, func() bool { return r.distinct() == n }) {
			t.Errorf("fan-out subscriber %s got %d of %d messages", name, r.distinct(), n)
			continue
		}
		r.mu.Lock()
		got := append([]string(nil), r.order[name]...)
		r.mu.Unlock()
		if len(got) != n {
			t.Errorf("fan-out subscriber %s got %d deliveries, want %d (no duplicates)", name, len(got), n)
		}
		for i := range uuids {
			if i < len(got) && got[i] != uuids[i] {
				t.Errorf("fan-out subscriber %s: message #%d out of order", name, i)
				break
			}
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ownServer is a Rill process this scenario may SIGKILL; it shares nothing with the suite's server.
type ownServer struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
}

func (s *ownServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir)
	log, err := os.OpenFile(s.dir+"/../rill.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err == nil {
		s.cmd.Stdout, s.cmd.Stderr = log, log
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.bin, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	// Ready means PONG: like Redis, the server accepts connections while it loads its
	// data and answers -LOADING until it is done, even if only for a few milliseconds.
	if !waitFor(10*time.Second, func() bool {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
		defer c.Close()
		return c.Ping(context.Background()).Err() == nil
	}) {
		t.Fatalf("rill did not answer PING on %s within 10 s", addr)
	}
}

func (s *ownServer) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
}

// The server is SIGKILLed and restarted while a publisher and a group subscriber are running. Every publish the
// server acknowledged must survive and be delivered at least once, and the subscriber sees first deliveries in order.
func TestServerKilledAndRestarted(t *testing.T) {
	bin := os.Getenv("RILL_BIN")
	if bin == "" {
		t.Fatal("RILL_BIN is not set: run these scenarios through compat/run")
	}
	base := t.TempDir()
	srv := &ownServer{bin: bin, dir: base + "/data", port: freePort(t)}
	if err := os.MkdirAll(srv.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv.start(t)
	defer srv.kill()
	addr := fmt.Sprintf("127.0.0.1:%d", srv.port)
	topic := uniqueTopic("restart")
	const n = 400

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subClient := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol(t), MaxRetries: -1})
	defer subClient.Close()
	sub := newSubscriber(t, redisstream.SubscriberConfig{Client: subClient, ConsumerGroup: "survivors",
		MaxIdleTime: time.Second, ClaimInterval: 300 * time.Millisecond})
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	r := newReceived()
	go consume(ctx, "survivor", ch, r)

	pubClient := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol(t)})
	defer pubClient.Close()
	pub := newPublisher(t, pubClient)

	var ackedMu sync.Mutex
	acked := map[string]int{} // UUID → sequence number, only for publishes the server acknowledged
	seqOf := map[string]int{}
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; i < n; i++ {
			m := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
			ackedMu.Lock()
			seqOf[m.UUID] = i
			ackedMu.Unlock()
			// Retry the same message until the server acknowledges it (the restart window fails some).
			for attempt := 0; ctx.Err() == nil; attempt++ {
				if err := pub.Publish(topic, m); err == nil {
					ackedMu.Lock()
					acked[m.UUID] = i
					ackedMu.Unlock()
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Kill in the middle of the stream, restart on the same port and data directory.
	waitFor(20*time.Second, func() bool {
		ackedMu.Lock()
		defer ackedMu.Unlock()
		return len(acked) >= n/2
	})
	srv.kill()
	killedAt := time.Now()
	time.Sleep(300 * time.Millisecond)
	srv.start(t)
	restartedAfter := time.Since(killedAt)

	select {
	case <-pubDone:
	case <-time.After(60 * time.Second):
		t.Fatal("publisher did not finish within 60 s of the restart")
	}
	ackedMu.Lock()
	ackedCopy := make(map[string]int, len(acked))
	for k, v := range acked {
		ackedCopy[k] = v
	}
	ackedMu.Unlock()

	// Durability first: what does the stream hold after the restart?
	check := newClient(t, addr)
	entries, err := check.XRange(context.Background(), topic, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE after restart: %v", err)
	}
	inStream := map[string]bool{}
	for _, e := range entries {
		if u, ok := e.Values["_watermill_message_uuid"].(string); ok {
			inStream[u] = true
		}
	}
	var lost []int
	for u, seq := range ackedCopy {
		if !inStream[u] {
			lost = append(lost, seq)
		}
	}
	if len(lost) > 0 {
		t.Errorf("DURABILITY: %d of %d acknowledged publishes are gone from the stream after SIGKILL + restart "+
			"(restarted after %v); the server lost acknowledged writes", len(lost), len(ackedCopy), restartedAfter)
	}

	if !waitFor(30*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for u := range ackedCopy {
			if r.counts[u] == 0 {
				return false
			}
		}
		return true
	}) {
		r.mu.Lock()
		missing := 0
		for u := range ackedCopy {
			if r.counts[u] == 0 {
				missing++
			}
		}
		r.mu.Unlock()
		t.Fatalf("AT-LEAST-ONCE: %d of %d acknowledged publishes never reached the subscriber within 30 s of the end",
			missing, len(ackedCopy))
	}

	// Order of first deliveries. One exception is legitimate: an entry the server delivered just before the kill
	// whose reply never reached the client comes back later through the claim pass.
	r.mu.Lock()
	defer r.mu.Unlock()
	firstSeen := map[string]bool{}
	last, inversions := -1, 0
	for _, u := range r.order["survivor"] {
		if firstSeen[u] {
			continue
		}
		firstSeen[u] = true
		seq := seqOf[u]
		if seq < last {
			inversions++
		} else {
			last = seq
		}
	}
	if inversions > 1 {
		t.Errorf("ORDER: %d first deliveries arrived out of publish order (at most 1 may, through the claim pass)", inversions)
	}
}
